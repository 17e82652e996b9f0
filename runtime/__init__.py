"""cam-rt runtime: CAMs with ONNX Runtime and NumPy, no TensorFlow.

This package never imports TensorFlow, Keras, tf2onnx or ``cam_rt.export``.
"""

from __future__ import annotations

from ._version import __version__
from .classes import VOC_CLASSES, resolve_class_names
from .errors import (
    CamRtError,
    ConfigError,
    ExportError,
    InputError,
    MissingDependencyError,
    ModelLoadError,
    ProviderError,
)
from .metadata import ModelMetadata, Preprocessing

__all__ = [
    "VOC_CLASSES",
    "CamRtError",
    "ConfigError",
    "ExportError",
    "InputError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelMetadata",
    "Preprocessing",
    "ProviderError",
    "__version__",
    "resolve_class_names",
]
