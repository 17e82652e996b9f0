"""Execution provider options configured for multi-scale TTA: CUDA, TensorRT (with its shape
profile) and OpenVINO. Pure logic (no onnxruntime import), so all of it is tested on CPU.

Why: every new input shape makes the CUDA EP's default ``EXHAUSTIVE`` cuDNN search
re-benchmark every convolution (hundreds of ms per shape), and makes the TensorRT EP rebuild its
engine (seconds to minutes) unless the shape lies inside the optimization profile it was built
for. Multi-scale TTA multiplies the shapes (one per scale and image size). So:

- CUDA: ``HEURISTIC`` search when sizes vary, ``EXHAUSTIVE`` only when sizes are bucketed (a
  small, known set of shapes that a warm-up can search once); the largest cuDNN workspace;
  an arena that grows by what is asked, not by powers of two.
- TensorRT: one profile (min/opt/max input shape) computed from the TTA plan, the batch size and
  the range of image sides, so no run leaves it; engine and timing caches on disk; fp16 on
  request; CUDA behind it for nodes TensorRT cannot take.
- Buckets: each pass's input size rounded to a multiple of ``bucket`` pixels (the model's
  stride or a multiple of it); maps are resized back to the image, as for any TTA pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, InputError

__all__ = [
    "CUDNN_SEARCH",
    "CudaConfig",
    "OpenVINOConfig",
    "ShapeProfile",
    "TensorRTConfig",
    "cpu_flags",
]

CudnnSearch = Literal["heuristic", "exhaustive", "default"]
CUDNN_SEARCH: dict[str, str] = {
    "heuristic": "HEURISTIC",
    "exhaustive": "EXHAUSTIVE",
    "default": "DEFAULT",
}


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} {value!r} must be an integer >= {minimum}")


@dataclass(frozen=True, slots=True)
class CudaConfig:
    """CUDA execution provider options (``--cudnn-search``, ``--gpu``).

    ``cudnn_search=None`` chooses: ``exhaustive`` when the input sizes are bucketed (few shapes,
    each searched once, best kernels after), else ``heuristic`` (no search per new shape).
    ``cuda_graphs``: capture one CUDA graph per input shape and replay it (ONNX Runtime's
    ``enable_cuda_graph``, one ``gpu_graph_id`` per shape); needs bucketed sizes.
    """

    device_id: int = 0
    cudnn_search: CudnnSearch | None = None
    max_workspace: bool = True
    arena_extend_strategy: Literal["kSameAsRequested", "kNextPowerOfTwo"] = "kSameAsRequested"
    gpu_mem_limit: int = 0  # bytes; 0: no limit
    cuda_graphs: bool = False
    max_graphs: int = 64  # shapes captured at most; later ones run uncaptured

    def __post_init__(self) -> None:
        _check_int("device_id", self.device_id, 0)
        _check_int("max_graphs", self.max_graphs, 1)
        _check_int("gpu_mem_limit", self.gpu_mem_limit, 0)
        if self.cudnn_search is not None and self.cudnn_search not in CUDNN_SEARCH:
            raise ConfigError(
                f"cudnn search '{self.cudnn_search}' is unknown: use heuristic, exhaustive or "
                "default"
            )
        if self.arena_extend_strategy not in ("kSameAsRequested", "kNextPowerOfTwo"):
            raise ConfigError(
                f"arena_extend_strategy '{self.arena_extend_strategy}' is unknown: use "
                "kSameAsRequested or kNextPowerOfTwo"
            )

    def search(self, bucketed: bool) -> str:
        """The cuDNN search this config runs with (lower-case name)."""
        if self.cudnn_search is not None:
            return self.cudnn_search
        return "exhaustive" if bucketed else "heuristic"

    def ort_options(self, bucketed: bool = False) -> dict[str, str]:
        """The option dictionary handed to ONNX Runtime's ``CUDAExecutionProvider``."""
        options = {
            "device_id": str(self.device_id),
            "cudnn_conv_algo_search": CUDNN_SEARCH[self.search(bucketed)],
            "cudnn_conv_use_max_workspace": "1" if self.max_workspace else "0",
            "arena_extend_strategy": self.arena_extend_strategy,
            "do_copy_in_default_stream": "1",
        }
        if self.gpu_mem_limit:
            options["gpu_mem_limit"] = str(self.gpu_mem_limit)
        if self.cuda_graphs:
            options["enable_cuda_graph"] = "1"
        return options


@dataclass(frozen=True, slots=True)
class ShapeProfile:
    """The (batch, height, width) range a TensorRT engine is built for, NHWC input."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    def __post_init__(self) -> None:
        for lo, mid, hi in zip(self.min, self.opt, self.max, strict=True):
            if not 1 <= lo <= mid <= hi:
                raise ConfigError(
                    f"shape profile min {self.min} <= opt {self.opt} <= max {self.max} does not "
                    "hold (each dimension >= 1)"
                )

    def contains(self, batch: int, height: int, width: int) -> bool:
        return all(
            lo <= v <= hi
            for lo, v, hi in zip(self.min, (batch, height, width), self.max, strict=True)
        )

    def check(self, batch: int, height: int, width: int) -> None:
        """InputError for a run outside the profile (TensorRT would rebuild its engine)."""
        if not self.contains(batch, height, width):
            raise InputError(
                f"a batch of {batch} input(s) of {height}x{width} pixels is outside the TensorRT "
                f"profile (batch {self.min[0]}..{self.max[0]}, {self.min[1]}x{self.min[2]} "
                f"to {self.max[1]}x{self.max[2]}): widen --min-side/--max-side"
            )

    def ort_strings(self, input_name: str) -> dict[str, str]:
        """``trt_profile_{min,opt,max}_shapes`` values, e.g. ``images:1x64x64x3``."""

        def text(shape: tuple[int, int, int]) -> str:
            n, h, w = shape
            return f"{input_name}:{n}x{h}x{w}x3"

        return {
            "trt_profile_min_shapes": text(self.min),
            "trt_profile_opt_shapes": text(self.opt),
            "trt_profile_max_shapes": text(self.max),
        }

    @classmethod
    def covering(
        cls,
        shapes: Iterable[tuple[int, int, int]],
        opt: tuple[int, int, int] | None = None,
    ) -> ShapeProfile:
        """The smallest profile holding every (batch, height, width) of ``shapes``; ``opt``
        defaults to the most frequent shape."""
        listed = list(shapes)
        if not listed:
            raise ConfigError("no input shapes to build a TensorRT profile from")
        lo = tuple(min(s[i] for s in listed) for i in range(3))
        hi = tuple(max(s[i] for s in listed) for i in range(3))
        if opt is None:
            opt = max(set(listed), key=lambda s: (listed.count(s), s))
        return cls(lo, opt, hi)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TensorRTConfig:
    """TensorRT execution provider options (``--trt-cache``, ``--fp16``)."""

    device_id: int = 0
    fp16: bool = False
    cache_dir: Path | None = None  # engine and timing caches; None: rebuilt every start
    builder_optimization_level: int = 3
    max_workspace_bytes: int = 0  # 0: TensorRT's default

    def __post_init__(self) -> None:
        _check_int("device_id", self.device_id, 0)
        _check_int("max_workspace_bytes", self.max_workspace_bytes, 0)
        level = self.builder_optimization_level
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 5:
            raise ConfigError(f"TensorRT builder optimization level {level!r} must be 0..5")
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    def ort_options(self, input_name: str, profile: ShapeProfile | None) -> dict[str, str]:
        """The option dictionary handed to ONNX Runtime's ``TensorrtExecutionProvider``."""
        options = {
            "device_id": str(self.device_id),
            "trt_fp16_enable": "True" if self.fp16 else "False",
            "trt_builder_optimization_level": str(self.builder_optimization_level),
        }
        if self.max_workspace_bytes:
            options["trt_max_workspace_size"] = str(self.max_workspace_bytes)
        if self.cache_dir is not None:
            path = str(self.cache_dir)
            options.update(
                trt_engine_cache_enable="True",
                trt_engine_cache_path=path,
                trt_timing_cache_enable="True",
                trt_timing_cache_path=path,
            )
        if profile is not None:
            options.update(profile.ort_strings(input_name))
        return options


OpenVINOPrecision = Literal["auto", "bf16", "fp32", "fp16"]
#: CPU features that run bf16 natively: where one is present, ``--precision auto`` measures bf16
#: against fp32 (``backend.precision``). Flags alone do not tell which is faster: bf16 ran at
#: half the fp32 speed on a Xeon with AVX512-BF16 and no AMX, and twice it on a Zen 5 with the
#: same flags.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True, slots=True)
class OpenVINOConfig:
    """OpenVINO execution provider options (``--device openvino``, ``--precision``).

    ``precision="auto"`` on the CPU: the session measures fp32 against bf16 (where the CPU has
    bf16) on the run's first input and keeps the fastest within the map bound (see
    ``backend.precision``); elsewhere, or before a decision, it stands for fp32.
    Sessions are compiled per input shape (``SessionConfig.static_shapes``): OpenVINO's
    dynamic-shape path was measured ~30% slower.
    """

    precision: OpenVINOPrecision = "auto"
    device_type: str = "CPU"
    cache_dir: Path | None = None
    num_threads: int = 0  # 0: OpenVINO's default

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "bf16", "fp32", "fp16"):
            raise ConfigError(
                f"OpenVINO precision '{self.precision}' is unknown: use auto, bf16, fp32 or fp16"
            )
        if not self.device_type:
            raise ConfigError("OpenVINO device_type is empty: use CPU, GPU or NPU")
        on_cpu = self.on_cpu
        if on_cpu and self.precision == "fp16":
            raise ConfigError(
                "OpenVINO runs fp16 on GPU or NPU devices, not on the CPU: use --precision fp32 "
                "or bf16 there"
            )
        if not on_cpu and self.precision == "bf16":
            raise ConfigError(
                f"OpenVINO bf16 is a CPU precision; on {self.device_type} use fp16 or fp32"
            )
        _check_int("num_threads", self.num_threads, 0)
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @property
    def on_cpu(self) -> bool:
        return self.device_type.upper().startswith("CPU")

    def resolved_precision(self) -> str:
        """The precision these options ask for: ``auto`` (not decided by a measurement) is
        fp32."""
        return "fp32" if self.precision == "auto" else self.precision

    def ort_options(self) -> dict[str, str]:
        """The option dictionary handed to ONNX Runtime's ``OpenVINOExecutionProvider``."""
        precision = self.resolved_precision()
        options = {"device_type": self.device_type}
        if precision == "bf16":  # no EP precision name for it: OpenVINO's own hint
            options["precision"] = "ACCURACY"
            options["load_config"] = json.dumps(
                {self.device_type: {"INFERENCE_PRECISION_HINT": "bf16"}}
            )
        else:
            options["precision"] = precision.upper()
        if self.cache_dir is not None:
            options["cache_dir"] = str(self.cache_dir)
        if self.num_threads:
            options["num_of_threads"] = str(self.num_threads)
        return options
