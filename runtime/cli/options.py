"""The option groups the model-running commands share, their parsers, and opening the model.

- :class:`ExplainOptions`: what to compute (``--tta``, ``--scales``, ``--classes``,
  ``--batch-size``, ``--input-size`` ...), giving an :class:`ExplainConfig`;
- :class:`DeviceOptions`: where it runs (``--device``, ``--gpu``, ``--trt-cache`` ...),
  giving a :class:`SessionConfig`.

Every default is the config dataclass's own (``TTAConfig().scales``, ``ExplainConfig()``,
``SessionConfig()``, ``CudaConfig()`` ...), so a default changes in one place. Commands take a
group with :func:`~cam_rt.runtime.cli.groups.group` (see that module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args

import typer

from ..backend.precision import ChoiceCacheMode
from ..backend.providers import CudaConfig, OpenVINOConfig, OpenVINOPrecision, TensorRTConfig
from ..backend.session import CamSession, SessionConfig
from ..classes import duplicate_names
from ..errors import ConfigError
from ..explain import ClassSelection, ExplainConfig
from ..maps.images import AlphaPolicy
from ..maps.tta import InputSize, TTAConfig, TTAMode
from ..plan import shape_profile
from .groups import choice

__all__ = [
    "DeviceOptions",
    "ExplainOptions",
    "ModelFile",
    "open_model",
    "parse_scales",
    "scales_text",
    "split",
]

#: The model argument of most commands.
ModelFile = Annotated[Path, typer.Argument(help="An ONNX file written by 'cam-rt export'.")]

CudnnChoice = Literal["auto", "heuristic", "exhaustive", "default"]

_TTA = TTAConfig()
_EXPLAIN = ExplainConfig()
_SESSION = SessionConfig()
_CUDA = CudaConfig()
_TENSORRT = TensorRTConfig()


def split(text: str) -> list[str]:
    """The non-empty, stripped items of a comma list."""
    return [part.strip() for part in text.split(",") if part.strip()]


def scales_text(scales: Sequence[float]) -> str:
    """Scales as ``--scales`` takes them: ``(0.5, 1.0)`` -> ``0.5,1``."""
    return ",".join(f"{s:g}" for s in scales)


DEFAULT_SCALES = scales_text(_TTA.scales)


def parse_scales(text: str) -> tuple[float, ...]:
    """``--scales`` text as numbers (the TTAConfig checks they are positive)."""
    try:
        return tuple(float(v) for v in split(text))
    except ValueError:
        raise ConfigError(
            f"--scales '{text}' is not a list of numbers: e.g. {DEFAULT_SCALES}"
        ) from None


_INPUT_SIZE_HELP = (
    "Size images are resized to before the model (TTA scales are relative to it, maps come back "
    "at the image's size): model (trained size), image (native), HxW, or N (shorter side); "
    "auto: model if the file records its size, else image."
)


#: The TTA fields and how each is named on the command line (by its value).
_TTA_OPTIONS: dict[str, Callable[[object], str]] = {
    "scales": lambda _: "--scales",
    "flip": lambda on: "--flip" if on else "--no-flip",
    "tta_mode": lambda _: "--tta-mode",
    "batch_flips": lambda on: "--batch-flips" if on else "--no-batch-flips",
}


@dataclass(frozen=True, slots=True)
class ExplainOptions:
    """What to compute: one field per option of :class:`ExplainConfig` and its
    :class:`TTAConfig` (TTA runs only with ``--tta``).

    The TTA options (``--scales``, ``--flip``, ``--tta-mode``, ``--batch-flips``) are checked
    whether or not ``--tta`` is given, so a bad value is an error either way; given without
    ``--tta`` they do nothing, and :meth:`notes` says so (one warning line).
    """

    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Multi-scale + flip TTA.")] = (
        _EXPLAIN.tta is not None
    )
    scales: Annotated[str, typer.Option("--scales", help="TTA scales.")] = DEFAULT_SCALES
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="TTA horizontal flip.")] = _TTA.flip
    tta_mode: Annotated[
        TTAMode, choice("--tta-mode", help="mean, keras-explainable (seed parity) or occse.")
    ] = _TTA.mode
    classes: Annotated[
        str, typer.Option("--classes", help="predicted, all, top-K, or a list of names/ids.")
    ] = _EXPLAIN.classes.mode
    threshold: Annotated[
        float, typer.Option("--threshold", help="Probability for 'predicted' (multi-label models).")
    ] = _EXPLAIN.classes.threshold
    batch_size: Annotated[int, typer.Option("--batch-size", help="Model inputs per run.")] = (
        _EXPLAIN.batch_size
    )
    bucket: Annotated[
        int,
        typer.Option(
            "--bucket", help="Round input sizes to a multiple of N px (0: off): few shapes on GPUs."
        ),
    ] = _EXPLAIN.bucket
    batch_flips: Annotated[
        bool | None,
        typer.Option(
            "--batch-flips/--no-batch-flips",
            help="Run each TTA scale's flipped twin in the same batch (default: on GPUs only).",
        ),
    ] = _EXPLAIN.batch_flips
    input_size: Annotated[str, typer.Option("--input-size", help=_INPUT_SIZE_HELP)] = (
        _EXPLAIN.input_size.mode
    )
    alpha: Annotated[AlphaPolicy, choice("--alpha", hidden=True)] = _EXPLAIN.alpha

    def __post_init__(self) -> None:
        TTAConfig(parse_scales(self.scales), self.flip, self.tta_mode)  # with or without --tta
        self.config()  # every value checked now: a bad one is a one-line ConfigError

    def notes(self, given: Set[str]) -> list[str]:
        """The warning for TTA options ``given`` (set on the command line) without --tta."""
        if self.tta:
            return []
        unused = [name(getattr(self, f)) for f, name in _TTA_OPTIONS.items() if f in given]
        if not unused:
            return []
        return [
            f"{', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect without --tta"
        ]

    def tta_config(self) -> TTAConfig | None:
        """The TTAConfig of ``--scales``, ``--flip`` and ``--tta-mode``; None without --tta."""
        if not self.tta:
            return None
        return TTAConfig(parse_scales(self.scales), self.flip, self.tta_mode)

    def config(self) -> ExplainConfig:
        """The ExplainConfig of these options."""
        return ExplainConfig(
            tta=self.tta_config(),
            classes=ClassSelection.parse(self.classes, self.threshold),
            batch_size=self.batch_size,
            alpha=self.alpha,
            batch_flips=self.batch_flips,
            bucket=self.bucket,
            input_size=InputSize.parse(self.input_size),
        )


@dataclass(frozen=True, slots=True)
class DeviceOptions:
    """Where the model runs: one field per option of :class:`SessionConfig` and its
    :class:`CudaConfig`, :class:`TensorRTConfig` and :class:`OpenVINOConfig`; ``min_side`` and
    ``max_side`` bound the image sides the TensorRT profile covers."""

    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="auto, cpu, cuda, tensorrt or openvino (comma list allowed); auto: a GPU if "
            "there is one, else OpenVINO or the CPU provider, whichever measured faster.",
        ),
    ] = ",".join(_SESSION.providers)
    gpu: Annotated[int, typer.Option("--gpu", help="CUDA/TensorRT device id.")] = _CUDA.device_id
    cudnn_search: Annotated[
        CudnnChoice,
        choice(
            "--cudnn-search",
            help="CUDA convolution search: heuristic, exhaustive, default, or auto (exhaustive "
            "with --bucket, else heuristic).",
        ),
    ] = _CUDA.cudnn_search or "auto"
    trt_cache: Annotated[
        Path | None,
        typer.Option(
            "--trt-cache", help="TensorRT: folder for engine and timing caches (kept across runs)."
        ),
    ] = _TENSORRT.cache_dir
    fp16: Annotated[
        bool,
        typer.Option(
            "--fp16", help="TensorRT: build fp16 engines (other devices: 'cam-rt export --fp16')."
        ),
    ] = _TENSORRT.fp16
    min_side: Annotated[
        int, typer.Option("--min-side", help="TensorRT profile: smallest image side (px).")
    ] = 32
    max_side: Annotated[
        int, typer.Option("--max-side", help="TensorRT profile: largest image side (px).")
    ] = 1024
    precision: Annotated[
        OpenVINOPrecision,
        choice(
            "--precision",
            help="OpenVINO: bf16 (CPU), fp32, fp16 (GPU/NPU), or auto (on the CPU: the fastest "
            "of fp32 and bf16 whose maps stay within 0.005 of fp32, measured once per machine "
            "and model; int8 files keep int8).",
        ),
    ] = OpenVINOConfig().precision
    choice_cache: Annotated[
        ChoiceCacheMode,
        choice(
            "--choice-cache",
            help="--device/--precision auto: use the measured choice cached for this CPU and "
            "model, refresh it (measure again), or off (measure, store nothing).",
        ),
    ] = _SESSION.choice_cache
    cuda_graphs: Annotated[
        bool,
        typer.Option(
            "--cuda-graphs",
            help="CUDA: capture and replay one CUDA graph per input shape (needs --bucket).",
        ),
    ] = _CUDA.cuda_graphs
    threads: Annotated[
        int, typer.Option("--threads", help="ONNX Runtime intra-op threads (0: auto).")
    ] = _SESSION.intra_op_threads

    def __post_init__(self) -> None:
        if self.cudnn_search not in get_args(CudnnChoice):
            raise ConfigError(
                f"--cudnn-search '{self.cudnn_search}' is unknown: use auto, heuristic, "
                "exhaustive or default"
            )

    def session_config(self, explain: ExplainConfig) -> SessionConfig:
        """The SessionConfig of these options; the TensorRT profile holds every input
        ``explain`` runs (its TTA, batch size, buckets) for image sides min_side..max_side."""
        return SessionConfig(
            providers=tuple(split(self.device)),
            intra_op_threads=self.threads,
            cuda=CudaConfig(
                device_id=self.gpu,
                cudnn_search=None if self.cudnn_search == "auto" else self.cudnn_search,
                cuda_graphs=self.cuda_graphs,
            ),
            tensorrt=TensorRTConfig(device_id=self.gpu, fp16=self.fp16, cache_dir=self.trt_cache),
            trt_profile=shape_profile(explain, self.min_side, self.max_side),
            bucketed=explain.bucket > 0,
            openvino=OpenVINOConfig(precision=self.precision),
            choice_cache=self.choice_cache,
        )


def open_model(model: Path, config: SessionConfig) -> CamSession:
    """The CamSession of ``model``; one warning line on stderr if its class names repeat."""
    session = CamSession(model, config)
    warn_repeated_names(model, session.class_names)
    return session


def warn_repeated_names(model: Path, class_names: Sequence[str]) -> None:
    """One warning line on stderr if ``model``'s class names repeat."""
    repeated = duplicate_names(class_names)
    if repeated:
        typer.echo(
            f"cam-rt: warning: {model} repeats class names ({', '.join(repeated[:5])}): "
            "select those classes by id",
            err=True,
        )
