"""``cam-rt doctor`` and ``cam-rt info``: facts about the environment and a model file.

Nothing here imports TensorFlow: optional packages are looked up by distribution metadata.
ONNX Runtime is reached through the backend only (:func:`available_providers`,
:class:`CamSession`); its installed distributions are read from their metadata.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from ..backend.choice import auto_choice
from ..backend.ort import available_providers
from ..backend.precision import DecisionCache, cpu_model
from ..backend.providers import BF16_FLAGS, cpu_flags
from ..backend.session import CamSession, SessionConfig
from ..errors import MissingDependencyError
from ..metadata import ModelMetadata

__all__ = ["Check", "environment_checks", "model_info"]

ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-openvino",
    "onnxruntime-directml",
)
GPU_LIBRARIES = {
    "CUDA runtime": ("cudart",),
    "cuBLAS": ("cublas",),
    "cuDNN": ("cudnn",),
    "TensorRT": ("nvinfer",),
}


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``cam-rt doctor``: ``level`` is ok, info, warning or error."""

    name: str
    level: Literal["ok", "info", "warning", "error"]
    detail: str


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment_checks() -> list[Check]:
    """What cam-rt can use here: ONNX Runtime packages and providers, GPU libraries, export."""
    checks: list[Check] = []
    installed = {d: v for d in ORT_DISTRIBUTIONS if (v := _version(d)) is not None}
    if not installed:
        checks.append(
            Check(
                "onnxruntime",
                "error",
                "not installed: pip install 'cam-rt[cpu]' (or 'cam-rt[gpu]' on NVIDIA GPUs)",
            )
        )
    elif len(installed) > 1:
        names = ", ".join(f"{d} {v}" for d, v in installed.items())
        checks.append(
            Check(
                "onnxruntime",
                "error",
                f"{names} are installed together; they install the same module and break each "
                f"other: pip uninstall -y {' '.join(installed)}, then install one of them",
            )
        )
    else:
        ((dist, version),) = installed.items()
        checks.append(Check("onnxruntime", "ok", f"{dist} {version}"))
    try:
        providers = available_providers()
        checks.append(Check("providers", "ok", ", ".join(providers)))
    except MissingDependencyError as exc:
        providers = []
        reason = exc.__cause__ or exc  # the ImportError itself: a missing or broken install
        checks.append(Check("providers", "error", f"onnxruntime does not import: {reason}"))
    wants_gpu = any(p in providers for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
    for label, libs in GPU_LIBRARIES.items():
        found = [lib for n in libs if (lib := ctypes.util.find_library(n))]
        if found:
            checks.append(Check(label, "ok", found[0]))
        else:
            level: Literal["info", "warning"] = "warning" if wants_gpu else "info"
            checks.append(Check(label, level, "not found on the library path"))
    flags = cpu_flags()
    native = sorted(f for f in flags if f in BF16_FLAGS)
    measured = "--precision auto measures fp32 against bf16 on the first run"
    checks.append(Check("CPU", "info", cpu_model()))
    if native:
        checks.append(Check("CPU bf16", "ok", f"{', '.join(native)}: {measured}"))
    else:
        checks.append(
            Check(
                "CPU bf16",
                "info",
                "not native (no AVX512-BF16 or AMX): OpenVINO runs fp32 unless --precision "
                "bf16 is forced",
            )
        )
    checks.append(choice_check())
    for module, dist, purpose in (
        ("tensorflow", "tensorflow", "export"),
        ("tf2onnx", "tf2onnx", "export"),
    ):
        if importlib.util.find_spec(module) is not None:
            checks.append(Check(module, "ok", f"{_version(dist) or '?'} ({purpose} available)"))
        else:
            checks.append(Check(module, "info", f"not installed: pip install 'cam-rt[{purpose}]'"))
    return checks


def choice_check(cache: DecisionCache | None = None) -> Check:
    """The ``--device auto`` / ``--precision auto`` decisions measured on this CPU, and where
    they are kept."""
    cache = cache or DecisionCache()
    cpu = cpu_model()
    here = [(k, d) for k, d in cache.all() if k.get("cpu") == cpu]
    if not here:
        return Check(
            "auto choice",
            "info",
            f"none measured on this CPU yet (the first run with --device auto or --precision "
            f"auto measures; kept in {cache.path})",
        )
    lines = [
        f"model {str(k.get('model_sha256', '?'))[:12]} ({k.get('engine', '?')}): {d.describe()}"
        for k, d in here
    ]
    return Check("auto choice", "ok", f"{len(here)} in {cache.path}; " + "; ".join(lines))


def model_info(path: Path) -> dict[str, Any]:
    """Inputs, outputs, metadata and classes of a model file, and this machine's providers."""
    session = CamSession(path, SessionConfig(providers=("cpu",)))
    meta = session.metadata
    return {
        "file": str(path),
        "size_mib": round(path.stat().st_size / 2**20, 2),
        "inputs": session.describe_inputs(),
        "outputs": session.describe_outputs(),
        "output": meta.output,
        "classes": list(meta.class_names),
        "activation": meta.activation,
        "preprocessing": meta.preprocessing.to_json(),
        "output_stride": meta.output_stride,
        "feature_layer": meta.feature_layer,
        "score_layer": meta.score_layer,
        "input_size": _input_size(meta),
        "method": meta.method,
        "fp16": meta.fp16,
        "precision": session.precision,
        "auto_choice": auto_choice(path, session.metadata.fp16, SessionConfig()),
        "source": meta.source,
        "source_sha256": meta.source_sha256,
        "producer": dict(meta.producer),
        "providers_available": available_providers(),
    }


def _input_size(meta: ModelMetadata) -> str:
    """``224x224, fixed``, ``224x224 (trained), dynamic`` or ``any, dynamic``."""
    if meta.input_size is None:
        return "any, dynamic"
    size = f"{meta.input_size[0]}x{meta.input_size[1]}"
    return f"{size}, fixed" if meta.fixed_size else f"{size} (trained), dynamic"
