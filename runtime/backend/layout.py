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


def check_layout(
    layout: ModelLayout,
    inputs: Mapping[str, Dims],
    outputs: Mapping[str, Dims],
    path: Path,
) -> None:
    """ModelLoadError unless the file has the one NHWC input and the two outputs of
    ``layout``, with as many classes as its metadata names (where the shapes are static)."""
    name = layout.input
    if name not in inputs or len(inputs) != 1:
        raise ModelLoadError(
            f"{path} has inputs {list(inputs)}; expected one input '{name}' (N, H, W, 3)"
        )
    shape = inputs[name]
    if len(shape) != 4 or (isinstance(shape[-1], int) and shape[-1] != 3):
        raise ModelLoadError(f"{path} input '{name}' has shape {shape}; expected (N, H, W, 3) NHWC")
    for output in (layout.scores, layout.maps):
        if output not in outputs:
            raise ModelLoadError(
                f"{path} has outputs {list(outputs)}; expected '{layout.scores}' and "
                f"'{layout.maps}': export it with 'cam-rt export' or name its outputs"
            )
    n = layout.metadata.num_classes
    static = {"scores": outputs[layout.scores][-1]}
    weights = layout.weights
    if weights is not None:
        static["CAM weights"] = weights.shape[1]
        k = outputs[layout.maps][-1]
        if isinstance(k, int) and k != weights.shape[0]:
            raise ModelLoadError(
                f"{path} output '{layout.maps}' has {k} channels but the CAM weights "
                f"expect {weights.shape[0]}"
            )
    else:
        static["maps"] = outputs[layout.maps][-1]
    for what, count in static.items():
        if isinstance(count, int) and count != n:
            raise ModelLoadError(
                f"{path}: the {what} have {count} classes but {n} class names were "
                "given: pass one name per class"
            )
