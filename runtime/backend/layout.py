"""Where a model file's input and outputs are, and the check that they fit its metadata.

A cam-rt file names its input ``images`` and its outputs ``scores`` and ``cams`` or
``features`` and describes itself in its metadata; a plain file is described by a
:class:`~cam_rt.runtime.backend.plain.PlainModel` instead. Either way the session works from
a :class:`ModelLayout`, checked against the shapes the file declares by :func:`check_layout`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..metadata import INPUT_NAME, SCORES_NAME, ModelMetadata, Preprocessing

__all__ = ["Dims", "ModelLayout", "check_layout", "metadata_layout"]

#: A declared tensor shape: sizes, or names (strings) for dynamic dimensions.
Dims = Sequence[int | str | None]


@dataclass(frozen=True)
class ModelLayout:
    """A model's input and output names, its metadata, and NumPy preprocessing (plain files;
    cam-rt files have theirs inside the graph)."""

    input: str
    scores: str
    maps: str
    metadata: ModelMetadata
    numpy_pre: Preprocessing | None = None

    @property
    def weights(self) -> np.ndarray | None:
        """The CAM weights (K, L) of a ``features`` model, else None."""
        return self.metadata.cam_weights


def metadata_layout(props: Mapping[str, str], path: Path) -> ModelLayout:
    """The layout of a cam-rt file, from its metadata properties."""
    metadata = ModelMetadata.from_props(props, where=str(path))
    maps = "cams" if metadata.output == "cam" else "features"
    return ModelLayout(INPUT_NAME, SCORES_NAME, maps, metadata)


#: ONNX Runtime's element type names -> NumPy's (what the messages say).
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16",
}
_FLOATING = ("tensor(float)", "tensor(float16)", "tensor(double)")
_ELSEWHERE = "import classifiers from elsewhere with 'cam-rt export model.onnx'"


def _dtype(kind: str | None) -> str:
    """``tensor(uint8)`` -> ``uint8``."""
    if kind is None:
        return "?"
    return _DTYPES.get(kind, kind.removeprefix("tensor(").removesuffix(")"))


def _what(name: str, shape: Dims, kind: str | None, role: str) -> str:
    """``input 'images' (uint8) has shape [...]``."""
    dtype = "" if kind is None else f" ({_dtype(kind)})"
    return f"{role} '{name}'{dtype} has shape {list(shape)}"


def check_layout(
    layout: ModelLayout,
    inputs: Mapping[str, Dims],
    outputs: Mapping[str, Dims],
    path: Path,
    types: Mapping[str, str] | None = None,
) -> None:
    """ModelLoadError unless the file has the one NHWC float32 input and the two outputs of
    ``layout`` (scores (N, L), maps (N, h, w, L or K), floating point), with as many classes
    as its metadata names, so a file cam-rt cannot run is refused when it opens, not on every
    image. ``types``: ONNX Runtime's element types by input and output name
    (``tensor(float)``), checked when given. Dynamic dimensions (names) pass; an output of
    unknown rank (no shape) is checked when it runs."""
    types = types or {}
    name = layout.input
    if name not in inputs or len(inputs) != 1:
        raise ModelLoadError(
            f"{path} has inputs {list(inputs)}; expected one input '{name}' (N, H, W, 3)"
        )
    _check_input(name, inputs[name], types.get(name), path)
    for output in (layout.scores, layout.maps):
        if output not in outputs:
            raise ModelLoadError(
                f"{path} has outputs {list(outputs)}; expected '{layout.scores}' and "
                f"'{layout.maps}': export it with 'cam-rt export' or name its outputs"
            )
    n = layout.metadata.num_classes
    weights = layout.weights
    channels = n if weights is None else weights.shape[0]
    _check_output(layout.scores, outputs[layout.scores], types.get(layout.scores), 2, n, path)
    _check_output(layout.maps, outputs[layout.maps], types.get(layout.maps), 4, channels, path)
    static = {"scores": outputs[layout.scores][-1] if outputs[layout.scores] else None}
    if weights is not None:
        static["CAM weights"] = weights.shape[1]
        k = outputs[layout.maps][-1] if outputs[layout.maps] else None
        if isinstance(k, int) and k != weights.shape[0]:
            raise ModelLoadError(
                f"{path} output '{layout.maps}' has {k} channels but the CAM weights "
                f"expect {weights.shape[0]}"
            )
    else:
        static["maps"] = outputs[layout.maps][-1] if outputs[layout.maps] else None
    for what, count in static.items():
        if isinstance(count, int) and count != n:
            raise ModelLoadError(
                f"{path}: the {what} have {count} classes but {n} class names were "
                "given: pass one name per class"
            )


def _check_input(name: str, shape: Dims, kind: str | None, path: Path) -> None:
    """(N, H, W, 3) float32: channels last, RGB."""
    last, second = (shape[-1], shape[1]) if len(shape) == 4 else (None, None)
    channels_first = isinstance(second, int) and second == 3 and last != 3
    wrong = (
        len(shape) != 4
        or (isinstance(last, int) and last != 3)
        or channels_first
        or (kind is not None and kind != "tensor(float)")
    )
    if wrong:
        hint = "; this one looks channels-first" if channels_first else ""
        raise ModelLoadError(
            f"{path} {_what(name, shape, kind, 'input')}; expected (N, H, W, 3) float32 "
            f"(NHWC, channels last{hint}): cam-rt runs the files 'cam-rt export' writes: "
            f"{_ELSEWHERE}"
        )


def _check_output(
    name: str, shape: Dims, kind: str | None, rank: int, channels: int, path: Path
) -> None:
    """``rank`` dimensions (when declared), floating point (when given)."""
    if (shape and len(shape) != rank) or (kind is not None and kind not in _FLOATING):
        expected = f"(N, {channels})" if rank == 2 else f"(N, h, w, {channels})"
        raise ModelLoadError(
            f"{path} {_what(name, shape, kind, 'output')}; expected {expected} floating "
            f"point: cam-rt runs the files 'cam-rt export' writes: {_ELSEWHERE}"
        )
