"""Importing onnxruntime, its exception classes, its execution providers, opening sessions.

The one place of cam-rt that imports ``onnxruntime`` (lazily, so that a missing install is a
:class:`~cam_rt.runtime.errors.MissingDependencyError` naming the pip extra, not an ImportError
at ``import cam_rt.runtime``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError, ModelLoadError

__all__ = [
    "PROVIDERS",
    "ProviderFallbackWarning",
    "available_providers",
    "first_line",
    "onnxruntime",
    "open_session",
    "ort_errors",
    "raised_by_onnxruntime",
    "resolve_providers",
    "session_options",
]

#: Short, case-insensitive provider names and the ONNX Runtime names they stand for.
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")


class ProviderFallbackWarning(UserWarning):
    """An execution provider was asked for but is not available; CPU is used instead."""


def onnxruntime() -> Any:
    """The ``onnxruntime`` module, or MissingDependencyError naming the pip extra."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            "onnxruntime", "cpu", "running models (or 'cam-rt[gpu]' for onnxruntime-gpu)"
        ) from exc
    return onnxruntime


@functools.cache
def ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's own exception classes (``Fail``, ``InvalidArgument``, ``EPFail``, ...).

    They live in ``onnxruntime.capi.onnxruntime_pybind11_state`` and each subclasses
    ``Exception`` directly (no common base), so they are collected from that module.
    """
    onnxruntime()
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(
        value
        for value in vars(state).values()
        if isinstance(value, type) and issubclass(value, Exception)
    )


def raised_by_onnxruntime(exc: BaseException) -> bool:
    """Whether ``exc`` is onnxruntime failing, not a bug: one of its own classes (see
    :func:`ort_errors`), or a RuntimeError raised from inside the onnxruntime package (its C++
    layer also raises plain RuntimeError, e.g. ``Error in execution: ...`` from
    ``run_with_iobinding``)."""
    if isinstance(exc, ort_errors()):
        return True
    if not isinstance(exc, RuntimeError) or exc.__traceback__ is None:
        return False
    last = exc.__traceback__
    while last.tb_next is not None:
        last = last.tb_next
    return Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(_package_dir())


@functools.cache
def _package_dir() -> Path:
    return Path(onnxruntime().__file__).resolve().parent


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def available_providers() -> list[str]:
    """The execution providers the installed onnxruntime offers."""
    return list(onnxruntime().get_available_providers())


def resolve_providers(
    requested: Sequence[str], available: Sequence[str] | None = None
) -> list[str]:
    """ONNX Runtime provider names for ``requested`` short names (or ``auto``).

    ``auto``: TensorRT, then CUDA, then OpenVINO, whichever are available, then CPU. Explicit
    names keep their order; one that is not available is skipped with a
    ProviderFallbackWarning. CPU is always last, as the fallback.
    """
    available = list(available) if available is not None else available_providers()
    if isinstance(requested, str):
        requested = requested.split(",")
    names = [r.strip().lower() for r in requested if r.strip()]
    if not names:
        raise ConfigError("no execution provider given: use auto, cpu, cuda, tensorrt or openvino")
    out: list[str] = []
    for name in names:
        if name == "auto":  # the best available, never warned about
            out.extend(PROVIDERS[n] for n in _AUTO_ORDER if PROVIDERS[n] in available)
            continue
        full = PROVIDERS.get(name)
        if full is None:
            if name in (p.lower() for p in available):
                full = next(p for p in available if p.lower() == name)
            else:
                raise ConfigError(
                    f"execution provider '{name}' is unknown: use auto or one of "
                    f"{', '.join(PROVIDERS)} (installed onnxruntime offers "
                    f"{', '.join(available) or 'none'})"
                )
        if full in available:
            out.append(full)
        else:
            warnings.warn(
                f"execution provider '{name}' ({full}) is not available in this onnxruntime "
                f"(it offers {', '.join(available)}); using CPU instead",
                ProviderFallbackWarning,
                stacklevel=2,
            )
    unique = [p for p in dict.fromkeys(out) if p != "CPUExecutionProvider"]
    return [*unique, "CPUExecutionProvider"]


def session_options(ort: Any, intra_op_threads: int) -> Any:
    """The ``SessionOptions`` every cam-rt session starts from."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Memory patterns are cached per input shape; TTA and mixed image sizes make many shapes,
    # and the cache then grows with the number of distinct images (measured ~25 KB each).
    options.enable_mem_pattern = False
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    return options


def open_session(
    ort: Any,
    path: Path,
    options: Any,
    providers: Sequence[tuple[str, Mapping[str, str]]],
    overrides: Mapping[str, int],
) -> Any:
    """An ONNX Runtime session of ``path``; ``overrides`` fix named dynamic dimensions (one
    input shape per session), or ModelLoadError saying why the file cannot be opened."""
    if overrides:
        fixed = ort.SessionOptions()
        fixed.graph_optimization_level = options.graph_optimization_level
        fixed.log_severity_level = options.log_severity_level
        fixed.enable_mem_pattern = True  # one shape per session: patterns pay here
        fixed.intra_op_num_threads = options.intra_op_num_threads
        for name, value in overrides.items():
            fixed.add_free_dimension_override_by_name(name, value)
        options = fixed
    try:
        return ort.InferenceSession(
            str(path), options, providers=[(p, dict(o)) for p, o in providers]
        )
    except Exception as exc:  # any failure to load is the file's: reported, never a traceback
        first = first_line(exc)
        if "external data" in first.lower():
            raise ModelLoadError(
                f"{path} keeps its weights in a side file that cannot be read ({first})"
                ": copy the model's NAME.<id>.data file beside it, or export it again"
            ) from exc
        raise ModelLoadError(
            f"{path} is not a usable ONNX model ({first}): pass a file written by 'cam-rt export'"
        ) from exc
