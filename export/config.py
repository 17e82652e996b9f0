"""Typed export configuration; each field is one ``cam-rt export`` option."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.metadata import ACTIVATIONS, OUTPUT_KINDS, Preprocessing

from .preprocess import PREPROCESSING

__all__ = ["DEFAULT_CHECK_SIZES", "ExportConfig"]

#: Input sizes (height, width) the export is checked at: odd and even, non-square.
DEFAULT_CHECK_SIZES: tuple[tuple[int, int], ...] = ((97, 131), (160, 224))
FP32_TOLERANCE = 1e-3  # float32 kernel differences reach 1e-4 on deep models
FP16_TOLERANCE = 2e-2
MIN_OPSET, MAX_OPSET = 13, 21


@dataclass(frozen=True, slots=True)
class ExportConfig:
    """How to export.

    - ``output``: ``cam`` (outputs scores + cams, the CAM inside the graph) or ``features``
      (scores + features, CAM weights stored in the metadata for NumPy weighting).
    - ``feature_layer`` / ``score_layer``: layer names; ``None`` finds them (see ``expose``).
    - ``activation``: ``sigmoid`` or ``softmax``; ``None`` reads it from the model.
    - ``preprocess``: ``torch``, ``caffe``, ``tf`` or ``none``, folded into the graph; ``None``
      means the built-in architecture's own (``torch`` for resnet38d), else ``none``.
    - ``classes``: ``voc`` or a text file of names; ``None``: built-in default or class_<i>.
    - ``weights``: for built-in architectures, a weights ``.h5`` or ``none`` (random).
    - ``check_sizes``: (height, width) pairs the ONNX file is compared with Keras at; ``None``:
      97x131 and 160x224 for models of any size; for a model with a trained size, that size
      (batch 1) and 0.75 x its height by 1.25 x its width (batch 2), or the trained size twice
      when the file is fixed-size. Given sizes come after the trained size.
    - ``tolerance``: largest relative error allowed (default 1e-3 fp32, 2e-2 fp16).
    - ``mean`` / ``std``: per-channel preprocessing on the 0..255 scale, in the model's channel
      order, applied as ``(x - mean) / std`` inside the graph (torchvision's are
      ``(123.675, 116.28, 103.53)`` and ``(58.395, 57.12, 57.375)``); ``bgr`` swaps RGB to BGR
      first. They replace ``preprocess`` (give one or the other).
    - ``feature_node``: ONNX sources only: the feature tensor (or the node making it) when the
      graph has several heads.
    - ``external_data``: the weights in a side file next to the model (``NAME.<id>.data``),
      which ONNX Runtime maps instead of parsing them out of the model: lower peak memory and
      faster loading for large models (ResNet38-d: 865 vs 1,313 MB, 0.8 vs 1.2 s).
    """

    output: Literal["cam", "features"] = "cam"
    feature_layer: str | None = None
    score_layer: str | None = None
    activation: Literal["sigmoid", "softmax"] | None = None
    preprocess: str | None = None
    classes: str | None = None
    weights: str | None = None
    opset: int = 17
    fp16: bool = False
    check_sizes: tuple[tuple[int, int], ...] | None = None
    tolerance: float | None = None
    external_data: bool = False
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    bgr: bool = False
    feature_node: str | None = None

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                triple = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                triple = ()
            if len(triple) != 3 or not all(math.isfinite(v) for v in triple):
                raise ConfigError(
                    f"{name} {value!r} must be three numbers (R,G,B on the 0..255 scale), e.g. "
                    "--mean 123.675,116.28,103.53"
                )
            if name == "std" and min(triple) <= 0:
                raise ConfigError(f"std {value!r} must be positive numbers")
            object.__setattr__(self, name, triple)
        if (self.mean is not None or self.std is not None or self.bgr) and self.preprocess:
            raise ConfigError(
                f"--preprocess {self.preprocess} and --mean/--std/--bgr both set the "
                "preprocessing: give one or the other"
            )
        if self.output not in OUTPUT_KINDS:
            raise ConfigError(f"output '{self.output}' is unknown: use one of {OUTPUT_KINDS}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation '{self.activation}' is unknown: use one of {', '.join(ACTIVATIONS)}"
            )
        if self.preprocess is not None and self.preprocess.lower() not in PREPROCESSING:
            raise ConfigError(
                f"preprocess '{self.preprocess}' is unknown: use one of {', '.join(PREPROCESSING)}"
            )
        if isinstance(self.opset, int) and not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ConfigError(
                f"opset {self.opset} is out of range: use {MIN_OPSET}..{MAX_OPSET} (default 17)"
            )
        if not isinstance(self.opset, int) or isinstance(self.opset, bool):
            raise ConfigError(f"opset {self.opset!r} must be an integer")
        sizes = self.check_sizes
        if sizes is None:
            pass
        elif len(sizes) < 2:
            raise ConfigError(
                f"check_sizes {sizes} has fewer than 2 sizes: give two or more (height, width), "
                "one of them odd, e.g. 97x131,160x224"
            )
        for size in sizes or ():
            if (
                not isinstance(size, (tuple, list))
                or len(size) != 2
                or not all(isinstance(v, int) for v in size)
                or min(size) < 8
            ):
                raise ConfigError(
                    f"check size {size!r} is invalid: give (height, width), each at least 8"
                )
        if self.tolerance is not None and not self.tolerance > 0:
            raise ConfigError(f"tolerance {self.tolerance} must be a positive number")

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The ``mean``/``std``/``bgr`` preprocessing, or None when they are not set."""
        if self.mean is None and self.std is None and not self.bgr:
            return None
        return Preprocessing(
            mode="custom",
            mean=self.mean or (0.0, 0.0, 0.0),
            std=self.std or (1.0, 1.0, 1.0),
            channel_order="BGR" if self.bgr else "RGB",
        )

    @property
    def effective_tolerance(self) -> float:
        if self.tolerance is not None:
            return self.tolerance
        return FP16_TOLERANCE if self.fp16 else FP32_TOLERANCE
