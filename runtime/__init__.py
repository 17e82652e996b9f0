"""cam-rt runtime: CAMs with ONNX Runtime, NumPy and OpenCV; no TensorFlow.

This package never imports TensorFlow, Keras, tf2onnx or ``cam_rt.export``.

    from cam_rt.runtime import CamSession, Explainer, ExplainConfig, TTAConfig

    session = CamSession("model.onnx")                      # once; thread-safe
    explainer = Explainer(session, ExplainConfig(tta=TTAConfig(scales=(0.5, 1, 1.5, 2))))
    (result,) = explainer.explain(rgb_uint8_image)          # CamResult: scores, maps (H, W, C)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load on first use
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

#: Public name -> the module that defines it (imported on first use, PEP 562), so that
#: ``import cam_rt.runtime`` (and the ``cam-rt`` command's start) loads no NumPy or
#: onnxruntime until a name is used.
_EXPORTS: dict[str, str] = {
    "Box": ".maps.cues",
    "CamResult": ".explain",
    "CamRtError": ".errors",
    "CamSession": ".backend.session",
    "ClassSelection": ".explain",
    "ConfigError": ".errors",
    "CudaConfig": ".backend.providers",
    "ExplainConfig": ".explain",
    "Explainer": ".explain",
    "ExportError": ".errors",
    "FidelityError": ".errors",
    "InputError": ".errors",
    "InputSize": ".maps.tta",
    "MissingDependencyError": ".errors",
    "ModelLoadError": ".errors",
    "ModelMetadata": ".metadata",
    "OpenVINOConfig": ".backend.providers",
    "Pass": ".maps.tta",
    "PlainModel": ".backend.plain",
    "Preprocessing": ".metadata",
    "ProviderError": ".errors",
    "ProviderFallbackWarning": ".backend.ort",
    "RemoteSession": ".backend.remote",
    "SessionConfig": ".backend.session",
    "SessionLike": ".backend.remote",
    "ShapeProfile": ".backend.providers",
    "TTAConfig": ".maps.tta",
    "TensorRTConfig": ".backend.providers",
    "VOC_CLASSES": ".classes",
    "available_providers": ".backend.ort",
    "batch_shapes": ".plan",
    "blend": ".maps.colour",
    "boxes": ".maps.cues",
    "class_colours": ".maps.colour",
    "class_overlay": ".maps.colour",
    "duplicate_names": ".classes",
    "gather_classes": ".maps.cam",
    "grid": ".maps.colour",
    "heatmap": ".maps.colour",
    "heatmap_overlay": ".maps.colour",
    "max_normalize": ".maps.filters",
    "normalize": ".maps.filters",
    "plan_passes": ".maps.tta",
    "positive_normalize": ".maps.filters",
    "prepare_image": ".maps.images",
    "probabilities": ".maps.cam",
    "resolve_class_names": ".classes",
    "resolve_providers": ".backend.ort",
    "seeds": ".maps.cues",
    "shape_profile": ".plan",
    "voc_palette": ".maps.colour",
    "weight_features": ".maps.cam",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cam_rt.runtime' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
