"""cam-rt runtime: CAMs with ONNX Runtime, NumPy and OpenCV; no TensorFlow.

This package never imports TensorFlow, Keras, tf2onnx or ``cam_rt.export``.

    from cam_rt.runtime import CamSession, Explainer, ExplainConfig, TTAConfig

    session = CamSession("model.onnx")                      # once; thread-safe
    explainer = Explainer(session, ExplainConfig(tta=TTAConfig(scales=(0.5, 1, 1.5, 2))))
    (result,) = explainer.explain(rgb_uint8_image)          # CamResult: scores, maps (H, W, C)
"""

from __future__ import annotations

from ._version import __version__
from .backend.ort import ProviderFallbackWarning, available_providers, resolve_providers
from .backend.plain import PlainModel
from .backend.providers import CudaConfig, OpenVINOConfig, ShapeProfile, TensorRTConfig
from .backend.remote import RemoteSession, SessionLike
from .backend.session import CamSession, SessionConfig
from .classes import VOC_CLASSES, duplicate_names, resolve_class_names
from .errors import (
    CamRtError,
    ConfigError,
    ExportError,
    FidelityError,
    InputError,
    MissingDependencyError,
    ModelLoadError,
    ProviderError,
)
from .explain import CamResult, ClassSelection, ExplainConfig, Explainer
from .maps.cam import gather_classes, probabilities, weight_features
from .maps.colour import (
    blend,
    class_colours,
    class_overlay,
    grid,
    heatmap,
    heatmap_overlay,
    voc_palette,
)
from .maps.cues import Box, boxes, seeds
from .maps.filters import max_normalize, normalize, positive_normalize
from .maps.images import prepare_image
from .maps.tta import InputSize, Pass, TTAConfig, plan_passes
from .metadata import ModelMetadata, Preprocessing
from .plan import batch_shapes, shape_profile

__all__ = [
    "VOC_CLASSES",
    "Box",
    "CamResult",
    "CamRtError",
    "CamSession",
    "ClassSelection",
    "ConfigError",
    "CudaConfig",
    "ExplainConfig",
    "Explainer",
    "ExportError",
    "FidelityError",
    "InputError",
    "InputSize",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelMetadata",
    "OpenVINOConfig",
    "Pass",
    "PlainModel",
    "Preprocessing",
    "ProviderError",
    "ProviderFallbackWarning",
    "RemoteSession",
    "SessionConfig",
    "SessionLike",
    "ShapeProfile",
    "TTAConfig",
    "TensorRTConfig",
    "__version__",
    "available_providers",
    "batch_shapes",
    "blend",
    "boxes",
    "class_colours",
    "class_overlay",
    "duplicate_names",
    "gather_classes",
    "grid",
    "heatmap",
    "heatmap_overlay",
    "max_normalize",
    "normalize",
    "plan_passes",
    "positive_normalize",
    "prepare_image",
    "probabilities",
    "resolve_class_names",
    "resolve_providers",
    "seeds",
    "shape_profile",
    "voc_palette",
    "weight_features",
]
