"""Latency measurement of a model (``cam-rt bench``) and the statistics the benchmarks share.

Pure timing and statistics (:func:`latency_stats`) are separate from the loop that drives a
session (:func:`bench_model`), so each is tested alone. Each input size is measured as a new
shape first (its first run: memory planning on CPU, cuDNN's algorithm search or a TensorRT engine
build on GPUs), then over repeated runs.

Sizes are image sizes; each runs at the size ``run`` would feed the model (:class:`InputSize`).
Without sizes, a file that records its trained size is measured at it, others at 224 and 320;
listed sizes with the ``auto`` input size run as given (the model's input sizes), and a
fixed-size file takes only its own size.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend.session import CamSession
from ..errors import ConfigError
from ..explain import ClassSelection, ExplainConfig, Explainer
from ..maps.tta import InputSize
from ..metadata import ModelMetadata

__all__ = [
    "DEFAULT_SIZES",
    "BenchConfig",
    "LatencyStats",
    "SizeResult",
    "bench_model",
    "bench_sizes",
    "latency_stats",
    "parse_size",
    "warm_up",
]


#: Sizes measured for files that do not record their trained size.
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((224, 224), (320, 320))


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Percentiles (linear interpolation), mean and quartiles of a list of seconds."""

    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    q1: float
    q3: float
    minimum: float
    maximum: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def as_dict(self) -> dict[str, float]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["iqr"] = self.iqr
        return out


def latency_stats(samples: Sequence[float]) -> LatencyStats:
    """Statistics of ``samples`` (seconds); ``ValueError`` if empty or not finite."""
    values = np.asarray([float(s) for s in samples], dtype=np.float64)
    if values.size == 0:
        raise ValueError("no samples")
    if not np.isfinite(values).all():
        raise ValueError("samples must be finite numbers")
    p = np.percentile(values, [25, 50, 75, 90, 99], method="linear")
    return LatencyStats(
        n=int(values.size),
        mean=float(values.mean()),
        p50=float(p[1]),
        p90=float(p[3]),
        p99=float(p[4]),
        q1=float(p[0]),
        q3=float(p[2]),
        minimum=float(values.min()),
        maximum=float(values.max()),
    )


def parse_size(text: str) -> tuple[int, int]:
    """``"320"`` -> (320, 320); ``"240x320"`` -> (240, 320) as (height, width)."""
    parts = text.lower().strip().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ConfigError(
            f"size '{text}' is not N or HxW with positive integers, e.g. 320 or 240x320"
        )
    return values[0], values[1]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What ``cam-rt bench`` measures: sizes (H, W), batch, runs, and how.

    ``explain=None``: one measured run is one model run on a batch of ``batch`` images (scores
    and maps at feature resolution). Else it is the full :class:`Explainer` call with that
    config (TTA passes, buckets, merged and normalized maps of the top class) on ``batch``
    images. ``sizes`` are image sizes, ``()``: the model's trained size if the file records it,
    else 224 and 320; ``input_size`` maps them to the model's input (see :func:`bench_sizes`).
    """

    sizes: tuple[tuple[int, int], ...] = ()
    batch: int = 1
    repeat: int = 20
    warmup: int = 2
    explain: ExplainConfig | None = None
    seed: int = 0
    input_size: InputSize = field(default_factory=InputSize)

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, InputSize):
            raise ConfigError(f"input_size {self.input_size!r} must be an InputSize")
        sizes = tuple(tuple(int(v) for v in s) for s in self.sizes)
        if any(len(s) != 2 or min(s) < 1 for s in sizes):
            raise ConfigError(f"sizes {self.sizes!r} must be (height, width) pairs of pixels")
        object.__setattr__(self, "sizes", sizes)
        for name in ("batch", "repeat"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} {value!r} must be an integer >= 1")
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 0:
            raise ConfigError(f"warmup {self.warmup!r} must be an integer >= 0")


@dataclass(frozen=True)
class SizeResult:
    """Figures for one input size: the first run on that shape, then the steady state."""

    height: int  # the model's input at TTA scale 1
    width: int
    batch: int
    first_run: float  # seconds of the first run on this shape
    stats: LatencyStats  # per run, after warm-up
    image: tuple[int, int] | None = None  # the images' (H, W) when resized to (height, width)

    @property
    def label(self) -> str:
        """``HxW``, or ``HxW -> hxw`` when images were resized to the model's input."""
        size = f"{self.height}x{self.width}"
        return size if self.image is None else f"{self.image[0]}x{self.image[1]} -> {size}"

    @property
    def images_per_second(self) -> float:
        return self.batch / self.stats.p50 if self.stats.p50 > 0 else math.inf

    @property
    def first_run_extra(self) -> float:
        """What a new shape costs beyond a warm run (seconds)."""
        return max(0.0, self.first_run - self.stats.p50)

    def as_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "batch": self.batch,
            "image": None if self.image is None else list(self.image),
            "first_run_s": self.first_run,
            "first_run_extra_s": self.first_run_extra,
            "images_per_s": self.images_per_second,
            "latency_s": self.stats.as_dict(),
        }


def time_call(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds one call of ``fn`` takes."""
    start = clock()
    fn()
    return clock() - start


def _runner(
    session: CamSession, explainer: Explainer | None, images: np.ndarray
) -> Callable[[], Any]:
    if explainer is not None:
        batch = list(images)
        return lambda: explainer.explain(batch)
    floats = images.astype(np.float32)
    return lambda: session.run(floats)


def bench_model(
    session: CamSession,
    config: BenchConfig,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[SizeResult]:
    """Measure ``session`` at each size of ``config`` (random RGB inputs, fixed seed)."""
    rng = np.random.default_rng(config.seed)
    where = str(session.path)
    shape, plan = bench_sizes(config, session.metadata, where)
    explainer = None
    if config.explain is not None:
        top = ClassSelection("top-k", k=1)
        explain = dataclasses.replace(config.explain, classes=top, input_size=shape)
        explainer = Explainer(session, explain)
    else:
        shape.check(session.metadata, None, 0, where)
    results = []
    for image, (height, width) in plan:
        # A model run gets its input size directly; an explain call resizes the images.
        h, w = image if explainer is not None else (height, width)
        images = rng.integers(0, 256, (config.batch, h, w, 3), dtype=np.uint8)
        call = _runner(session, explainer, images)
        first = time_call(call, clock)
        for _ in range(config.warmup):
            call()
        samples = [time_call(call, clock) for _ in range(config.repeat)]
        resized = image if image != (height, width) else None
        stats = latency_stats(samples)
        result = SizeResult(height, width, config.batch, first, stats, resized)
        results.append(result)
        if progress is not None:
            progress(
                f"{result.label} batch {config.batch}: p50 {stats.p50 * 1e3:.1f} ms, "
                f"first run {first * 1e3:.1f} ms"
            )
    return results


def bench_sizes(
    config: BenchConfig, metadata: ModelMetadata, where: str = "the model"
) -> tuple[InputSize, list[tuple[tuple[int, int], tuple[int, int]]]]:
    """The input size that runs and the (image size, model input size) pairs to measure.

    Listed sizes with the ``auto`` input size are the model's input sizes (``image``); a
    fixed-size file refuses any other than its own."""
    shape = config.input_size
    if config.sizes and shape.mode == "auto":
        shape = InputSize("image")
        fixed = metadata.input_size if metadata.fixed_size else None
        if fixed is not None:
            other = next((s for s in config.sizes if s != fixed), None)
            if other is not None:
                size = f"{fixed[0]}x{fixed[1]}"
                raise ConfigError(
                    f"{where} takes only {size} inputs (its head needs that size): --sizes "
                    f"{other[0]}x{other[1]} cannot run; drop --sizes or pass --sizes {size}"
                )
            shape = InputSize("model")
    sizes = config.sizes or (
        (metadata.input_size,) if metadata.input_size is not None else DEFAULT_SIZES
    )
    return shape, [(s, shape.target(*s, metadata)) for s in sizes]


def warm_up(
    session: CamSession,
    shapes: Sequence[tuple[int, int, int]],
    progress: Callable[[int, tuple[int, int, int], float], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Run ``session`` once on zeros of each (batch, h, w) shape; seconds per shape. The shapes
    a run will see come from :func:`cam_rt.runtime.plan.warmup_shapes`."""
    seconds = []
    for i, (n, h, w) in enumerate(shapes):
        batch = np.zeros((n, h, w, 3), np.float32)
        start = clock()
        session.run(batch)
        seconds.append(clock() - start)
        if progress is not None:
            progress(i, (n, h, w), seconds[-1])
    return seconds
