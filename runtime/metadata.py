"""The metadata cam-rt stores in an exported ONNX file (ONNX ``metadata_props``).

This module is the file format's contract: ``cam_rt.export`` writes it with
:meth:`ModelMetadata.to_props`, the runtime reads it with :meth:`ModelMetadata.from_props`.
Every key is prefixed ``cam_rt.``; values are strings (JSON where structured).

Outputs of a cam-rt file (bound by name, never by position):

- ``scores``: (N, L) float32, pooled class scores before the activation.
- ``cams`` (output kind ``cam``): (N, h, w, L) float32, NHWC, the class activation maps at
  feature resolution, ``cams[n, i, j, l] = sum_k A[n, i, j, k] * W[k, l]`` (no bias).
- ``features`` (output kind ``features``): (N, h, w, K) float32, NHWC, the feature maps A; the
  CAM weights W (K, L) are stored in the metadata (``cam_rt.cam_weights``, a base64 ``.npy``).

The input ``images`` is (N, H, W, 3) float32 RGB in 0..255, dims named batch/height/width; the
preprocessing recorded under ``cam_rt.preprocess`` is already inside the graph.

Input size and method (keys absent in older files read as the defaults):

- ``cam_rt.input_size``: ``"HxW"`` (e.g. ``"224x224"``), the size the Keras model was built or
  trained at; absent when unknown. The runtime resizes images to it by default
  (``--input-size model``) and maps come back at each image's own resolution.
- ``cam_rt.fixed_size``: JSON bool, default ``false``; ``true`` when the graph accepts only
  ``input_size`` (e.g. a Flatten head), which then must be present.
- ``cam_rt.method``: ``"cam"`` (default: ``cams = features @ W``, a linear head) or
  ``"grad-cam"`` (a non-linear head: Grad-CAM maps computed inside the graph).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import ConfigError, ModelLoadError

__all__ = [
    "ACTIVATIONS",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "METHODS",
    "OUTPUT_KINDS",
    "ModelMetadata",
    "Preprocessing",
]

FORMAT_VERSION = 1
PREFIX = "cam_rt."
INPUT_NAME = "images"
SCORES_NAME = "scores"
OUTPUT_KINDS = ("cam", "features")
ACTIVATIONS = ("sigmoid", "softmax")
METHODS = ("cam", "grad-cam")

OutputKind = Literal["cam", "features"]
Activation = Literal["sigmoid", "softmax"]
Method = Literal["cam", "grad-cam"]


@dataclass(frozen=True, slots=True)
class Preprocessing:
    """Input preprocessing folded into the graph: ``(x[..., order] * scale - mean) / std``.

    ``x`` is RGB 0..255; ``channel_order`` is the order the model wants (``RGB`` or ``BGR``).
    """

    mode: str
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: Literal["RGB", "BGR"] = "RGB"

    def apply(self, images: np.ndarray) -> np.ndarray:
        """The same transform in NumPy: RGB 0..255 (..., 3) -> the model's float32 input."""
        x = images[..., ::-1] if self.channel_order == "BGR" else images
        out = x * np.float32(self.scale) - np.asarray(self.mean, np.float32)
        return np.ascontiguousarray(out / np.asarray(self.std, np.float32), dtype=np.float32)

    def to_json(self) -> str:
        return json.dumps(
            {
                "mode": self.mode,
                "scale": self.scale,
                "mean": list(self.mean),
                "std": list(self.std),
                "channel_order": self.channel_order,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        """The preprocessing of :meth:`to_json`'s text; ValueError if it is not that."""
        d = json.loads(text)
        wrong = ValueError(
            "not a JSON object of mode (text), scale (a number), mean and std (3 numbers each, "
            "std non-zero) and channel_order (RGB or BGR)"
        )
        if not isinstance(d, dict) or not isinstance(d.get("mode"), str):
            raise wrong
        order = d.get("channel_order")
        scale, mean, std = _number(d.get("scale")), _triple(d.get("mean")), _triple(d.get("std"))
        if order not in ("RGB", "BGR") or None in (scale, mean, std) or 0.0 in (std or ()):
            raise wrong
        assert scale is not None and mean is not None and std is not None
        return cls(mode=d["mode"], scale=scale, mean=mean, std=std, channel_order=order)


def _number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (text, bools, null)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _triple(values: Any) -> tuple[float, float, float] | None:
    """Three JSON numbers; None for anything else."""
    numbers = [_number(v) for v in values] if isinstance(values, list) else []
    if len(numbers) != 3 or None in numbers:
        return None
    a, b, c = (float(v) for v in numbers if v is not None)
    return (a, b, c)


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """What cam-rt knows about an exported model.

    ``cam_weights`` is (K, L) float32 for ``output == "features"`` files and ``None`` otherwise.
    ``output_stride`` is the input/feature size ratio (8 for ResNet38-d, 32 for most ResNets).
    ``input_size`` is the (height, width) the Keras model was built/trained at (None: unknown);
    ``fixed_size`` says the file accepts only that size; ``method`` how ``cams`` is computed.
    """

    output: OutputKind
    class_names: tuple[str, ...]
    activation: Activation
    preprocessing: Preprocessing
    output_stride: int
    feature_layer: str
    score_layer: str
    source_sha256: str
    source: str = ""
    fp16: bool = False
    cam_weights: np.ndarray | None = field(default=None, compare=False, repr=False)
    producer: Mapping[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    #: The weights' side file (beside the model) of ``cam-rt export --external-data``; "" if
    #: the weights are inside the model file.
    external_data: str = ""
    input_size: tuple[int, int] | None = None
    fixed_size: bool = False
    method: Method = "cam"

    def __post_init__(self) -> None:
        if self.input_size is not None:
            size = tuple(self.input_size)
            if len(size) != 2 or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                for v in size
            ):
                raise ConfigError(
                    f"input_size {self.input_size!r} must be (height, width) in pixels, "
                    "e.g. (224, 224), or None"
                )
            object.__setattr__(self, "input_size", (int(size[0]), int(size[1])))
        if not isinstance(self.fixed_size, bool):
            raise ConfigError(f"fixed_size {self.fixed_size!r} must be True or False")
        if self.fixed_size and self.input_size is None:
            raise ConfigError(
                "fixed_size is True but input_size is None: give the size the file accepts"
            )
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r} is unknown: use one of {METHODS}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` key/value strings for an ONNX file."""
        props = {
            "format_version": str(self.format_version),
            "output": self.output,
            "classes": json.dumps(list(self.class_names)),
            "activation": self.activation,
            "preprocess": self.preprocessing.to_json(),
            "output_stride": str(self.output_stride),
            "feature_layer": self.feature_layer,
            "score_layer": self.score_layer,
            "source_sha256": self.source_sha256,
            "source": self.source,
            "fp16": json.dumps(self.fp16),
            "producer": json.dumps(dict(self.producer)),
        }
        if self.cam_weights is not None:
            props["cam_weights"] = _encode_array(self.cam_weights)
        if self.external_data:
            props["external_data"] = self.external_data
        if self.input_size is not None:
            props["input_size"] = f"{self.input_size[0]}x{self.input_size[1]}"
        props["fixed_size"] = json.dumps(self.fixed_size)
        props["method"] = self.method
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "model") -> ModelMetadata:
        """Read the metadata back; raises ModelLoadError, one line naming the first bad or
        missing key and what it should hold."""
        own = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
        if not own:
            raise ModelLoadError(
                f"{where} has no cam-rt metadata: export it with 'cam-rt export', or describe "
                "its outputs and CAM weights explicitly"
            )
        try:
            version = _int(own, "format_version", minimum=1)
            if version > FORMAT_VERSION:
                raise ModelLoadError(
                    f"{where} was written by a newer cam-rt (format {version}, this one reads "
                    f"up to {FORMAT_VERSION}): upgrade cam-rt"
                )
            return cls(**_fields(own), format_version=version)
        except (KeyError, ValueError, TypeError) as exc:  # ValueError: _Bad, ConfigError
            detail = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            raise ModelLoadError(
                f"{where} has broken cam-rt metadata: {detail}: export the model again with "
                "'cam-rt export'"
            ) from None


class _Bad(ValueError):
    """A metadata value cam-rt cannot use; the message names the key and what it should be."""


def _quote(text: str) -> str:
    """A value as the messages show it: quoted, cut to about 60 characters."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _text(own: Mapping[str, str], key: str, default: str | None = None) -> str:
    if key in own:
        return own[key]
    if default is None:
        raise _Bad(f"{PREFIX}{key} is missing")
    return default


def _json(own: Mapping[str, str], key: str, default: str | None = None) -> Any:
    text = _text(own, key, default)
    try:
        return json.loads(text)
    except ValueError:
        raise _Bad(f"{PREFIX}{key} {_quote(text)} is not JSON") from None


def _int(own: Mapping[str, str], key: str, minimum: int) -> int:
    text = _text(own, key).strip()
    if not text.lstrip("-").isdigit() or int(text) < minimum:
        raise _Bad(f"{PREFIX}{key} {_quote(text)} is not an integer >= {minimum}")
    return int(text)


def _choice(own: Mapping[str, str], key: str, choices: tuple[str, ...], default: str = "") -> str:
    text = _text(own, key, default or None)
    if text not in choices:
        raise _Bad(f"{PREFIX}{key} {text!r} is not one of {choices}")
    return text


def _flag(own: Mapping[str, str], key: str) -> bool:
    value = _json(own, key, "false")
    if not isinstance(value, bool):
        raise _Bad(f"{PREFIX}{key} {_quote(own[key])} is not true or false")
    return value


def _fields(own: Mapping[str, str]) -> dict[str, Any]:
    """ModelMetadata's fields (but format_version) from the ``cam_rt.`` properties."""
    classes = _json(own, "classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise _Bad(
            f"{PREFIX}classes {_quote(own['classes'])} is not a JSON list of class names "
            '(strings, e.g. ["cat", "dog"])'
        )
    producer = _json(own, "producer", "{}")
    if not (isinstance(producer, dict) and all(isinstance(v, str) for v in producer.values())):
        raise _Bad(f"{PREFIX}producer {_quote(own['producer'])} is not a JSON object of strings")
    try:
        preprocessing = Preprocessing.from_json(_text(own, "preprocess"))
    except ValueError as exc:
        detail = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _Bad(f"{PREFIX}preprocess {_quote(own['preprocess'])} is {detail}") from None
    output = _choice(own, "output", OUTPUT_KINDS)
    weights = None if "cam_weights" not in own else _decode_weights(own["cam_weights"])
    if output == "features" and weights is None:
        raise _Bad(f"{PREFIX}cam_weights is missing: a 'features' file needs its CAM weights")
    size = own.get("input_size")
    return {
        "output": output,
        "class_names": tuple(classes),
        "activation": _choice(own, "activation", ACTIVATIONS),
        "preprocessing": preprocessing,
        "output_stride": _int(own, "output_stride", minimum=0),
        "feature_layer": _text(own, "feature_layer"),
        "score_layer": _text(own, "score_layer"),
        "source_sha256": _text(own, "source_sha256"),
        "source": own.get("source", ""),
        "fp16": _flag(own, "fp16"),
        "cam_weights": weights,
        "producer": producer,
        "external_data": own.get("external_data", ""),
        "input_size": None if size is None else _parse_size(size),
        "fixed_size": _flag(own, "fixed_size"),
        "method": _choice(own, "method", METHODS, "cam"),
    }


def _decode_weights(text: str) -> np.ndarray:
    """The (K, L) CAM weights of ``cam_rt.cam_weights``."""
    try:
        weights = _decode_array(text)
    except (ValueError, OSError, EOFError):
        raise _Bad(f"{PREFIX}cam_weights is not a base64 .npy array of numbers") from None
    if weights.ndim != 2 or 0 in weights.shape:
        raise _Bad(f"{PREFIX}cam_weights has shape {weights.shape}; expected (K, L)")
    return weights


def _parse_size(text: str) -> tuple[int, int]:
    """``"224x320"`` -> (224, 320); ValueError otherwise."""
    parts = text.split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise _Bad(
            f"{PREFIX}input_size {_quote(text)} is not HxW with positive integers, e.g. 224x224"
        )
    return int(parts[0]), int(parts[1])


def _encode_array(array: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _decode_array(text: str) -> np.ndarray:
    array = np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    return np.asarray(array, dtype=np.float32)
