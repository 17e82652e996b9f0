"""Plain ONNX files (not exported by cam-rt): described by a :class:`PlainModel`.

Such a file has one NHWC input and two outputs: scores, and CAMs or features. Its
description gives the output names, the CAM weights for features, the activation, the class
names (counted from the model when not given) and the preprocessing to apply in NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ConfigError, ModelLoadError
from ..metadata import ModelMetadata, Preprocessing
from .layout import Dims, ModelLayout

__all__ = ["PlainModel", "load_cam_weights", "plain_layout"]


@dataclass(frozen=True)
class PlainModel:
    """Describes an ONNX file not exported by cam-rt: NHWC input, two outputs.

    ``maps_output`` holds ``features`` (N, h, w, K) with ``cam_weights`` (K, L) (an array or a
    ``.npy`` path), or ``cams`` (N, h, w, L). ``preprocessing`` is applied in NumPy before the
    model (cam-rt files have it inside the graph).
    """

    scores_output: str
    maps_output: str
    maps_kind: Literal["features", "cams"] = "features"
    cam_weights: np.ndarray | str | Path | None = field(default=None, compare=False)
    activation: Literal["sigmoid", "softmax"] = "sigmoid"
    class_names: tuple[str, ...] | None = None
    preprocessing: Preprocessing = field(default_factory=lambda: Preprocessing(mode="none"))
    input_name: str | None = None
    output_stride: int = 0  # 0: measured when the session opens

    def __post_init__(self) -> None:
        if self.maps_kind not in ("features", "cams"):
            raise ConfigError(f"maps_kind '{self.maps_kind}' is unknown: use features or cams")
        if self.activation not in ("sigmoid", "softmax"):
            raise ConfigError(f"activation '{self.activation}' is unknown: use sigmoid or softmax")
        if self.output_stride < 0:
            raise ConfigError(f"output_stride {self.output_stride} must be >= 0")


def load_cam_weights(raw: np.ndarray | str | Path) -> np.ndarray:
    """CAM weights (K, L) float32 from an array or a ``.npy`` file; (1, 1, K, L) is accepted."""
    if isinstance(raw, (str, Path)):
        try:
            raw = np.load(raw, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read CAM weights '{raw}': {exc}") from exc
    weights = np.asarray(raw, dtype=np.float32)
    if weights.ndim == 4 and weights.shape[:2] == (1, 1):
        weights = weights[0, 0]
    if weights.ndim != 2:
        raise ModelLoadError(
            f"CAM weights have shape {weights.shape}; expected (K, L) or (1, 1, K, L)"
        )
    return weights


def plain_layout(
    plain: PlainModel, inputs: Mapping[str, Dims], outputs: Mapping[str, Dims], path: Path
) -> ModelLayout:
    """The layout of the plain file at ``path`` (declared ``inputs`` and ``outputs``, name ->
    shape) as ``plain`` describes it; its metadata is made up from the description."""
    weights: np.ndarray | None = None
    if plain.maps_kind == "features":
        if plain.cam_weights is None:
            raise ConfigError(
                "a plain model with a features output needs cam_weights (K, L): pass the "
                "classifier kernel as an array or a .npy file"
            )
        weights = load_cam_weights(plain.cam_weights)
    scores_shape = outputs.get(plain.scores_output)
    classes = plain.class_names
    if classes is None:
        n = weights.shape[1] if weights is not None else None
        if n is None and scores_shape is not None and isinstance(scores_shape[-1], int):
            n = scores_shape[-1]
        if n is None:
            raise ConfigError("cannot tell the number of classes: pass class_names")
        classes = tuple(f"class_{i}" for i in range(n))
    metadata = ModelMetadata(
        output="features" if plain.maps_kind == "features" else "cam",
        class_names=tuple(classes),
        activation=plain.activation,
        preprocessing=plain.preprocessing,
        output_stride=plain.output_stride,
        feature_layer=plain.maps_output,
        score_layer=plain.scores_output,
        source_sha256="",
        source=f"plain ONNX file {path.name}",
        cam_weights=weights,
    )
    return ModelLayout(
        input=plain.input_name or next(iter(inputs)),
        scores=plain.scores_output,
        maps=plain.maps_output,
        metadata=metadata,
        numpy_pre=plain.preprocessing if plain.preprocessing.mode != "none" else None,
    )
