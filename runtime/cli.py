"""The ``cam-rt`` command.

Sub-commands that need optional packages (``export`` needs TensorFlow) are plug-ins registered
through the ``cam_rt.commands`` entry-point group, so this module, like the rest of
``cam_rt.runtime``, never imports ``cam_rt.export`` or TensorFlow. Each plug-in imports its heavy
dependencies inside the command body, so ``cam-rt --help`` stays fast.

Errors: a command raises ``CamRtError``; the group prints it as one line on stderr and exits 1.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import math
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from ._version import __version__
from .errors import CamRtError

__all__ = ["app", "get_app", "main"]


class _CamRtGroup(TyperGroup):
    """Turns cam-rt errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:  # ctx: typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except CamRtError as exc:
            typer.echo(f"cam-rt: error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="cam-rt",
    cls=_CamRtGroup,
    help="Class activation maps at deployment speed: export Keras classifiers to ONNX and "
    "compute CAMs with ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"cam-rt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """cam-rt: class activation maps with ONNX Runtime."""


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_scales(text: str) -> tuple[float, ...]:
    from .errors import ConfigError

    try:
        return tuple(float(v) for v in _split(text))
    except ValueError:
        raise ConfigError(f"--scales '{text}' is not a list of numbers: e.g. 0.5,1,1.5,2") from None


# Options shared by the commands that run a model (run, eval, bench, warmup).
_DEVICE = typer.Option(
    "auto", "--device", help="auto, cpu, cuda, tensorrt or openvino (comma list allowed)."
)
_GPU = typer.Option(0, "--gpu", help="CUDA/TensorRT device id.")
_CUDNN = typer.Option(
    "auto",
    "--cudnn-search",
    help="CUDA convolution search: heuristic, exhaustive, default, or auto (exhaustive with "
    "--bucket, else heuristic).",
)
_TRT_CACHE = typer.Option(
    None, "--trt-cache", help="TensorRT: folder for engine and timing caches (kept across runs)."
)
_FP16 = typer.Option(
    False, "--fp16", help="TensorRT: build fp16 engines (other devices: 'cam-rt export --fp16')."
)
_BUCKET = typer.Option(
    0, "--bucket", help="Round input sizes to a multiple of N px (0: off): few shapes on GPUs."
)
_MIN_SIDE = typer.Option(32, "--min-side", help="TensorRT profile: smallest image side (px).")
_MAX_SIDE = typer.Option(1024, "--max-side", help="TensorRT profile: largest image side (px).")
_BATCH_FLIPS = typer.Option(
    None,
    "--batch-flips/--no-batch-flips",
    help="Run each TTA scale's flipped twin in the same batch (default: on GPUs only).",
)
_THREADS = typer.Option(0, "--threads", help="ONNX Runtime intra-op threads (0: auto).")
_CUDA_GRAPHS = typer.Option(
    False,
    "--cuda-graphs",
    help="CUDA: capture and replay one CUDA graph per input shape (needs --bucket).",
)
_PRECISION = typer.Option(
    "auto",
    "--precision",
    help="OpenVINO: bf16 (CPU), fp32, fp16 (GPU/NPU), or auto (bf16 on CPUs with AMX).",
)
_INPUT_SIZE = typer.Option(
    "auto",
    "--input-size",
    help="Size images are resized to before the model (TTA scales are relative to it, maps "
    "come back at the image's size): model (trained size), image (native), HxW, or N "
    "(shorter side); auto: model if the file records its size, else image.",
)


def _open_model(model: Path, session_config: Any) -> Any:
    """The CamSession of ``model``; one warning line on stderr if its class names repeat."""
    from .classes import duplicate_names
    from .session import CamSession

    session = CamSession(model, session_config)
    repeated = duplicate_names(session.class_names)
    if repeated:
        typer.echo(
            f"cam-rt: warning: {model} repeats class names ({', '.join(repeated[:5])}): "
            "select those classes by id",
            err=True,
        )
    return session


def _session_config(
    device: str,
    explain_config: Any,
    gpu: int = 0,
    cudnn_search: str = "auto",
    trt_cache: Path | None = None,
    fp16: bool = False,
    min_side: int = 32,
    max_side: int = 1024,
    threads: int = 0,
    precision: str = "auto",
    cuda_graphs: bool = False,
) -> Any:
    """The SessionConfig of the device options, the TensorRT profile planned from the TTA."""
    from .errors import ConfigError
    from .explain import shape_profile
    from .providers import CudaConfig, OpenVINOConfig, TensorRTConfig
    from .session import SessionConfig

    if cudnn_search not in ("auto", "heuristic", "exhaustive", "default"):
        raise ConfigError(
            f"--cudnn-search '{cudnn_search}' is unknown: use auto, heuristic, exhaustive or "
            "default"
        )
    return SessionConfig(
        providers=tuple(_split(device)),
        intra_op_threads=threads,
        cuda=CudaConfig(
            device_id=gpu,
            cudnn_search=None if cudnn_search == "auto" else cudnn_search,  # type: ignore[arg-type]
            cuda_graphs=cuda_graphs,
        ),
        tensorrt=TensorRTConfig(device_id=gpu, fp16=fp16, cache_dir=trt_cache),
        trt_profile=shape_profile(explain_config, min_side, max_side),
        bucketed=explain_config.bucket > 0,
        openvino=OpenVINOConfig(precision=precision),  # type: ignore[arg-type]
    )


@app.command("run")
def run_command(
    model: Path = typer.Argument(..., help="An ONNX file written by 'cam-rt export'."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Folder for the outputs."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Multi-scale + flip TTA."),
    scales: str = typer.Option("0.5,1,1.5,2", "--scales", help="TTA scales."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="TTA horizontal flip."),
    tta_mode: str = typer.Option(
        "mean", "--tta-mode", help="mean, keras-explainable (seed parity) or occse."
    ),
    classes: str = typer.Option(
        "predicted", "--classes", help="predicted, all, top-K, or a list of names/ids."
    ),
    threshold: float = typer.Option(
        0.5, "--threshold", help="Probability for 'predicted' (multi-label models)."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Per-image labels: JSON {name: [labels]} or 'name label ...' lines."
    ),
    device: str = _DEVICE,
    gpu: int = _GPU,
    cudnn_search: str = _CUDNN,
    trt_cache: Path | None = _TRT_CACHE,
    fp16: bool = _FP16,
    bucket: int = _BUCKET,
    min_side: int = _MIN_SIDE,
    max_side: int = _MAX_SIDE,
    batch_flips: bool | None = _BATCH_FLIPS,
    precision: str = _PRECISION,
    cuda_graphs: bool = _CUDA_GRAPHS,
    input_size: str = _INPUT_SIZE,
    batch_size: int = typer.Option(8, "--batch-size", help="Model inputs per run."),
    bg_threshold: float = typer.Option(
        0.3, "--bg-threshold", help="Background score of the segmentation seeds."
    ),
    save: str = typer.Option(
        "overlay,maps", "--save", help="Any of overlay,heatmap,maps,seeds,boxes."
    ),
    grid_file: Path | None = typer.Option(
        None, "--grid", help="Also write a grid picture of the first images."
    ),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Resume: skip images whose outputs all exist."
    ),
    max_pixels: int = typer.Option(
        100_000_000, "--max-pixels", help="Refuse larger images (decompression bombs)."
    ),
    alpha: str = typer.Option("error", "--alpha", hidden=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, errors only."),
    engine: str = typer.Option("local", "--engine", help="local, or ray (a pool of Ray actors)."),
    ray_address: str = typer.Option(
        "",
        "--ray-address",
        help="Ray: a cluster to join ('auto', ray://host:10001); default local.",
    ),
    num_workers: int = typer.Option(1, "--num-workers", help="Ray: actors (one session each)."),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", help="Ray: GPUs per actor (fractions share a GPU)."
    ),
) -> None:
    """Compute CAMs for images and write overlays, maps, seeds and boxes.

    Exit code: 0 all done, 2 some inputs failed, 1 nothing could run, 130 interrupted.
    """
    import signal

    from .errors import ConfigError
    from .explain import ClassSelection, ExplainConfig, Explainer
    from .runner import RunConfig, Runner, discover_inputs, load_labels
    from .tta import InputSize, TTAConfig

    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine '{engine}' is unknown: use local or ray")
    tta_config = TTAConfig(_parse_scales(scales), flip, tta_mode) if tta else None  # type: ignore[arg-type]
    explain_config = ExplainConfig(
        tta=tta_config,
        classes=ClassSelection.parse(classes, threshold),
        batch_size=batch_size,
        alpha=alpha,  # type: ignore[arg-type]
        batch_flips=batch_flips,
        bucket=bucket,
        input_size=InputSize.parse(input_size),
    )
    run_config = RunConfig(
        save=tuple(_split(save)),
        bg_threshold=bg_threshold,
        max_pixels=max_pixels,
        skip_existing=skip_existing,
        grid=grid_file,
    )
    items = discover_inputs(inputs, exclude=[outdir])
    label_map = load_labels(labels) if labels is not None else None
    session_config = _session_config(
        device,
        explain_config,
        gpu,
        cudnn_search,
        trt_cache,
        fp16,
        min_side,
        max_side,
        precision=precision,
        cuda_graphs=cuda_graphs,
    )
    explainer = Explainer(_open_model(model, session_config), explain_config)
    for values in (label_map or {}).values():  # unknown classes: say so before any work
        explainer.resolve_labels(values)
    progress = _Progress(quiet)
    if engine == "ray":
        from .ray_engine import RayConfig, RayRunner

        ray_config = RayConfig(
            address=ray_address, num_workers=num_workers, gpus_per_worker=gpus_per_worker
        )
        runner: Runner = RayRunner(
            model, explainer, outdir, run_config, label_map, progress.event, ray_config
        )
    else:
        runner = Runner(explainer, outdir, run_config, label_map, progress.event)
    previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        with progress:
            summary = runner.run(items)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet or summary.failed or summary.interrupted:
        state = "interrupted" if summary.interrupted else "done"
        typer.echo(
            f"cam-rt: {state}: {summary.done} written, {summary.skipped} skipped, "
            f"{summary.failed} failed of {summary.total} in {summary.seconds:.1f} s "
            f"-> {outdir}/results.jsonl",
            err=True,
        )
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Progress:
    """A rich progress bar on a terminal, periodic plain lines otherwise, nothing if quiet."""

    def __init__(self, quiet: bool, every: float = 5.0) -> None:
        self.quiet = quiet
        self.every = every
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._done = 0
        self._total = 0
        self._start = 0.0
        self._last = 0.0

    def __enter__(self) -> _Progress:
        import time

        self._start = self._last = time.perf_counter()
        if self.tty and not self.quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("cam-rt"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def _say(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=True)

    def event(self, kind: str, data: Any) -> None:
        import time

        if kind == "start":
            self._total = data["total"] - data["skipped"]
            if data["skipped"]:
                self._say(f"cam-rt: skipping {data['skipped']} images whose outputs exist")
            if self._bar is not None:
                self._task = self._bar.add_task("run", total=self._total, rate="")
            return
        if kind == "conversion":
            self._say(f"cam-rt: note: converting {data['kind']} images (first: {data['name']})")
            return
        if kind == "failed":
            record = data["record"]
            self._say(f"cam-rt: failed: {record['name']}: {record['error']}")
        self._done += 1
        now = time.perf_counter()
        rate = self._done / max(now - self._start, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done, rate=f"{rate:.2f} img/s")
        elif not self.quiet and (now - self._last >= self.every or self._done == self._total):
            self._last = now
            left = (self._total - self._done) / rate if rate > 0 else 0
            self._say(
                f"cam-rt: {self._done}/{self._total} images, {rate:.2f} img/s, ETA {left:.0f} s"
            )


def _parse_thresholds(text: str) -> tuple[float, ...]:
    """``0.10:0.40:0.01`` (start:stop:step, stop excluded) or a comma list."""
    from .errors import ConfigError

    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop <= start:
                raise ValueError
            count = math.ceil((stop - start) / step - 1e-9)
            return tuple(round(start + i * step, 6) for i in range(count))
        return tuple(float(v) for v in _split(text))
    except ValueError:
        raise ConfigError(
            f"--thresholds '{text}' is not START:STOP:STEP or a list, e.g. 0.10:0.40:0.01"
        ) from None


@app.command("eval")
def eval_command(
    model: Path = typer.Argument(..., help="An ONNX file written by 'cam-rt export'."),
    voc_root: Path | None = typer.Option(
        None, "--voc-root", help="A VOC-layout folder (JPEGImages/, SegmentationClass/)."
    ),
    split: str = typer.Option(
        "train", "--split", help="Split name under ImageSets/Segmentation, or a file of ids."
    ),
    images: Path | None = typer.Option(None, "--images", help="Image folder (other layouts)."),
    masks: Path | None = typer.Option(None, "--masks", help="Mask folder (other layouts)."),
    labels: Path | None = typer.Option(
        None, "--labels", help="Image-level labels file (default: classes in each mask)."
    ),
    predicted_labels: bool = typer.Option(
        False, "--predicted-labels", help="Explain the predicted classes, not the true ones."
    ),
    thresholds: str = typer.Option(
        "0.10:0.40:0.01", "--thresholds", help="Background thresholds swept."
    ),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Multi-scale + flip TTA."),
    scales: str = typer.Option("0.5,1,1.5,2", "--scales", help="TTA scales."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="TTA horizontal flip."),
    tta_mode: str = typer.Option("mean", "--tta-mode", help="mean, keras-explainable or occse."),
    device: str = _DEVICE,
    gpu: int = _GPU,
    cudnn_search: str = _CUDNN,
    trt_cache: Path | None = _TRT_CACHE,
    fp16: bool = _FP16,
    bucket: int = _BUCKET,
    min_side: int = _MIN_SIDE,
    max_side: int = _MAX_SIDE,
    batch_flips: bool | None = _BATCH_FLIPS,
    precision: str = _PRECISION,
    cuda_graphs: bool = _CUDA_GRAPHS,
    input_size: str = _INPUT_SIZE,
    batch_size: int = typer.Option(8, "--batch-size", help="Model inputs per run."),
    json_file: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress."),
) -> None:
    """Score CAM seeds against ground-truth masks (OC-CSE protocol: mIoU, best threshold)."""
    from .errors import ConfigError
    from .evaluate import evaluate, voc_items, write_report
    from .explain import ClassSelection, ExplainConfig, Explainer
    from .runner import load_labels
    from .tta import InputSize, TTAConfig

    if voc_root is not None:
        split_file = (
            Path(split)
            if Path(split).is_file()
            else (voc_root / "ImageSets" / "Segmentation" / f"{split}.txt")
        )
        items = voc_items(voc_root / "JPEGImages", voc_root / "SegmentationClass", split_file)
    elif images is not None and masks is not None:
        if split != "train" and not Path(split).is_file():
            raise ConfigError(f"--split {split} is not a file of image ids")
        items = voc_items(images, masks, Path(split) if Path(split).is_file() else None)
    else:
        raise ConfigError("give --voc-root DIR, or both --images DIR and --masks DIR")
    tta_config = TTAConfig(_parse_scales(scales), flip, tta_mode) if tta else None  # type: ignore[arg-type]
    selection = ClassSelection("predicted") if predicted_labels else ClassSelection("all")
    explain_config = ExplainConfig(
        tta=tta_config,
        classes=selection,
        batch_size=batch_size,
        batch_flips=batch_flips,
        bucket=bucket,
        input_size=InputSize.parse(input_size),
    )
    session_config = _session_config(
        device,
        explain_config,
        gpu,
        cudnn_search,
        trt_cache,
        fp16,
        min_side,
        max_side,
        precision=precision,
        cuda_graphs=cuda_graphs,
    )
    explainer = Explainer(_open_model(model, session_config), explain_config)
    label_map = None
    if labels is not None:
        label_map = {k: list(v) for k, v in load_labels(labels).items()}
        missing = [item.name for item in items if item.name not in label_map]
        if missing:
            raise ConfigError(
                f"--labels {labels} has no entry for {len(missing)} image(s), first "
                f"'{missing[0]}': give labels for every image of the split"
            )
        for values in label_map.values():
            explainer.resolve_labels(values)
    progress = _Progress(quiet)
    with progress:
        report = evaluate(
            explainer,
            items,
            _parse_thresholds(thresholds),
            predicted_labels,
            label_map,
            progress.event,
        )
    report.extra["tta"] = (
        None
        if tta_config is None
        else {"scales": list(tta_config.scales), "flip": tta_config.flip, "mode": tta_config.mode}
    )
    typer.echo(report.table())
    if json_file is not None:
        write_report(json_file, report)


@app.command("bench")
def bench_command(
    model: Path = typer.Argument(..., help="An ONNX file written by 'cam-rt export'."),
    sizes: str = typer.Option(
        "",
        "--sizes",
        help="Input sizes: N (square) or HxW, comma separated (default: the size the file "
        "records, else 224,320).",
    ),
    batch: int = typer.Option(1, "--batch", help="Images per run."),
    repeat: int = typer.Option(20, "--repeat", help="Measured runs per size."),
    warmup: int = typer.Option(2, "--warmup", help="Unmeasured runs per size after the first."),
    tta: bool = typer.Option(
        False, "--tta/--no-tta", help="Time the whole TTA explain call, not one model run."
    ),
    scales: str = typer.Option("0.5,1,1.5,2", "--scales", help="TTA scales."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="TTA horizontal flip."),
    tta_mode: str = typer.Option("mean", "--tta-mode", help="mean, keras-explainable or occse."),
    device: str = _DEVICE,
    gpu: int = _GPU,
    cudnn_search: str = _CUDNN,
    trt_cache: Path | None = _TRT_CACHE,
    fp16: bool = _FP16,
    bucket: int = _BUCKET,
    min_side: int = _MIN_SIDE,
    max_side: int = _MAX_SIDE,
    batch_flips: bool | None = _BATCH_FLIPS,
    precision: str = _PRECISION,
    cuda_graphs: bool = _CUDA_GRAPHS,
    threads: int = _THREADS,
    input_size: str = _INPUT_SIZE,
    json_file: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """Latency of a model per input size: first run on each new shape, then p50/p90/p99."""
    import json
    import platform
    import time

    from rich.console import Console
    from rich.table import Table

    from .bench import BenchConfig, bench_model, parse_size
    from .explain import ExplainConfig
    from .io import write_atomic
    from .session import CamSession
    from .tta import InputSize, TTAConfig

    tta_config = TTAConfig(_parse_scales(scales), flip, tta_mode) if tta else None  # type: ignore[arg-type]
    shape = InputSize.parse(input_size)
    explain_config = ExplainConfig(
        tta=tta_config,
        batch_size=max(batch, 1),
        batch_flips=batch_flips,
        bucket=bucket,
        input_size=shape,
    )
    config = BenchConfig(
        input_size=shape,
        sizes=tuple(parse_size(s) for s in _split(sizes)),
        batch=batch,
        repeat=repeat,
        warmup=warmup,
        explain=explain_config if tta_config is not None or bucket else None,
    )
    session_config = _session_config(
        device,
        explain_config,
        gpu,
        cudnn_search,
        trt_cache,
        fp16,
        min_side,
        max_side,
        threads,
        precision,
        cuda_graphs,
    )
    session = CamSession(model, session_config)
    what = "explain with TTA" if tta_config else ("explain" if config.explain else "model run")
    console = Console(stderr=True)
    console.print(
        f"cam-rt bench: {model.name}, {what}, providers {', '.join(session.providers)}, "
        f"precision {session.precision}, batch {batch}, {repeat} runs per size",
        markup=False,
        highlight=False,
    )
    results = bench_model(
        session, config, lambda text: console.print(text, markup=False, highlight=False)
    )
    table = Table(title=f"{model.name}: {what}, seconds per run of {batch} image(s)")
    for column in ("size", "first run ms", "p50 ms", "p90 ms", "p99 ms", "IQR ms", "images/s"):
        table.add_column(column, justify="right")
    for r in results:
        s = r.stats
        table.add_row(
            r.label,
            f"{r.first_run * 1e3:.1f}",
            f"{s.p50 * 1e3:.1f}",
            f"{s.p90 * 1e3:.1f}",
            f"{s.p99 * 1e3:.1f}",
            f"{s.iqr * 1e3:.1f}",
            f"{r.images_per_second:.2f}",
        )
    Console().print(table)
    if json_file is not None:
        payload = {
            "model": str(model),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": {"processor": platform.processor(), "platform": platform.platform()},
            "providers": session.providers,
            "precision": session.precision,
            "mode": what,
            "tta": None
            if tta_config is None
            else {
                "scales": list(tta_config.scales),
                "flip": tta_config.flip,
                "mode": tta_config.mode,
            },
            "batch": batch,
            "repeat": repeat,
            "warmup": warmup,
            "sizes": [r.as_dict() for r in results],
        }
        write_atomic(json_file, (json.dumps(payload, indent=2) + "\n").encode())


@app.command("warmup")
def warmup_command(
    model: Path = typer.Argument(..., help="An ONNX file written by 'cam-rt export'."),
    sizes: str = typer.Option(
        "", "--sizes", help="Image sizes to warm (N or HxW, comma separated); else the range."
    ),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Multi-scale + flip TTA."),
    scales: str = typer.Option("0.5,1,1.5,2", "--scales", help="TTA scales."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="TTA horizontal flip."),
    tta_mode: str = typer.Option("mean", "--tta-mode", help="mean, keras-explainable or occse."),
    batch_size: int = typer.Option(8, "--batch-size", help="Model inputs per run."),
    device: str = _DEVICE,
    gpu: int = _GPU,
    cudnn_search: str = _CUDNN,
    trt_cache: Path | None = _TRT_CACHE,
    fp16: bool = _FP16,
    bucket: int = _BUCKET,
    min_side: int = _MIN_SIDE,
    max_side: int = _MAX_SIDE,
    batch_flips: bool | None = _BATCH_FLIPS,
    precision: str = _PRECISION,
    cuda_graphs: bool = _CUDA_GRAPHS,
    json_file: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Summary only."),
) -> None:
    """Run every input shape that later runs will make once (cuDNN search, TensorRT engine
    build, memory planning) and report what it cost. Use the options of the later runs."""
    import json
    import time

    from .bench import parse_size, warm_up, warmup_shapes
    from .explain import ExplainConfig
    from .io import write_atomic
    from .session import CamSession
    from .tta import TTAConfig

    tta_config = TTAConfig(_parse_scales(scales), flip, tta_mode) if tta else None  # type: ignore[arg-type]
    explain_config = ExplainConfig(
        tta=tta_config, batch_size=batch_size, batch_flips=batch_flips, bucket=bucket
    )
    image_sizes = [parse_size(s) for s in _split(sizes)]
    session_config = _session_config(
        device,
        explain_config,
        gpu,
        cudnn_search,
        trt_cache,
        fp16,
        min_side,
        max_side,
        precision=precision,
        cuda_graphs=cuda_graphs,
    )
    start = time.perf_counter()
    session = CamSession(model, session_config)
    opened = time.perf_counter() - start
    if explain_config.batch_flips is None:  # what the runs on this device will do
        explain_config = ExplainConfig(
            tta=tta_config, batch_size=batch_size, batch_flips=session.on_gpu, bucket=bucket
        )
    shapes = warmup_shapes(explain_config, image_sizes, min_side, max_side, session.metadata)
    typer.echo(
        f"cam-rt warmup: {len(shapes)} input shapes on {', '.join(session.providers)} "
        f"(session opened in {opened:.1f} s)",
        err=True,
    )

    def report(i: int, shape: tuple[int, int, int], seconds: float) -> None:
        if not quiet:
            n, h, w = shape
            typer.echo(f"  {i + 1}/{len(shapes)}: {n}x{h}x{w}: {seconds * 1e3:.1f} ms", err=True)

    seconds = warm_up(session, shapes, report)
    total = sum(seconds)
    slowest = max(range(len(seconds)), key=seconds.__getitem__) if seconds else None
    line = f"warmed {len(shapes)} shapes in {total:.1f} s"
    if slowest is not None:
        n, h, w = shapes[slowest]
        line += f"; slowest {n}x{h}x{w}: {seconds[slowest] * 1e3:.1f} ms"
    typer.echo(line)
    if json_file is not None:
        payload = {
            "model": str(model),
            "providers": session.providers,
            "session_open_s": opened,
            "total_s": total,
            "shapes": [
                {"batch": n, "height": h, "width": w, "seconds": t}
                for (n, h, w), t in zip(shapes, seconds, strict=True)
            ],
        }
        write_atomic(json_file, (json.dumps(payload, indent=2) + "\n").encode())


@app.command("quantize")
def quantize_command(
    model: Path = typer.Argument(..., help="An fp32 ONNX file written by 'cam-rt export'."),
    calibration: Path = typer.Option(
        ..., "--calibration", help="Folder of images like those the model will see."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The int8 file to write."),
    images: int = typer.Option(32, "--images", help="Calibration images used (at most)."),
    tta: bool = typer.Option(
        True, "--tta/--no-tta", help="Calibrate and check at every TTA input size."
    ),
    scales: str = typer.Option("0.5,1,1.5,2", "--scales", help="TTA scales."),
    method: str = typer.Option("minmax", "--method", help="minmax, entropy or percentile."),
    head_float: bool = typer.Option(
        True, "--head-float/--quantize-head", help="Keep the CAM head (last Conv) in float."
    ),
    floor: float = typer.Option(
        0.99, "--floor", help="Refuse below this mean cosine similarity of the maps."
    ),
    force: bool = typer.Option(False, "--force", help="Write the file even below the floor."),
    json_file: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """int8 static quantization (QDQ, per-channel) calibrated on real images, written only if
    its maps stay close to the float model's."""
    import json

    from .errors import ConfigError
    from .io import write_atomic
    from .quantize import QuantizeConfig, load_calibration, quantize_model, report_dict
    from .tta import TTAConfig

    config = QuantizeConfig(
        tta=TTAConfig(_parse_scales(scales)) if tta else None,
        max_images=images,
        method=method,  # type: ignore[arg-type]
        keep_head_float=head_float,
        floor=floor,
        force=force,
    )
    if not calibration.is_dir():
        raise ConfigError(f"--calibration {calibration} is not a folder of images")
    pictures = load_calibration(calibration, config.max_images)
    report = quantize_model(
        model, pictures, output, config, lambda text: typer.echo(f"cam-rt: {text}", err=True)
    )
    f = report.fidelity
    typer.echo(
        f"{output}: {report.bytes_before / 2**20:.1f} -> {report.bytes_after / 2**20:.1f} MiB; "
        f"maps vs float: cosine {f.mean_cosine:.4f} (floor {floor}), max abs {f.max_abs:.3f}, "
        f"mean abs {f.mean_abs:.4f}, top-1 agreement {f.top1_agreement:.0%}"
    )
    if json_file is not None:
        write_atomic(json_file, (json.dumps(report_dict(report), indent=2) + "\n").encode())


@app.command("triton")
def triton_command(
    model: Path = typer.Argument(..., help="An ONNX file written by 'cam-rt export'."),
    output: Path = typer.Option(..., "-o", "--output", help="The model repository folder."),
    name: str = typer.Option("", "--name", help="Model name (default: the file's stem)."),
    max_batch: int = typer.Option(8, "--max-batch", help="Triton's max_batch_size."),
    cpu: bool = typer.Option(False, "--cpu", help="CPU instances instead of GPU ones."),
    instances: int = typer.Option(1, "--instances", help="Model instances per device."),
    tensorrt: bool = typer.Option(False, "--tensorrt", help="The TensorRT accelerator."),
    fp16: bool = typer.Option(False, "--fp16", help="TensorRT fp16 engines."),
    trt_cache: str = typer.Option(
        "", "--trt-cache", help="A folder on the server for TensorRT engine and timing caches."
    ),
    tta: bool = typer.Option(True, "--tta/--no-tta", help="Plan shapes for multi-scale TTA."),
    scales: str = typer.Option("0.5,1,1.5,2", "--scales", help="TTA scales."),
    bucket: int = _BUCKET,
    min_side: int = _MIN_SIDE,
    max_side: int = _MAX_SIDE,
    warmup_sizes: str = typer.Option(
        "",
        "--warmup-sizes",
        help="Image sizes whose TTA shapes Triton runs at load, e.g. 224,320x480.",
    ),
) -> None:
    """Write a Triton Inference Server model repository (ONNX Runtime backend) for the model,
    with a client that runs cam-rt's TTA around Triton calls."""
    from .triton import TritonConfig, describe, parse_sizes, write_repository
    from .tta import TTAConfig

    config = TritonConfig(
        name=name,
        max_batch=max_batch,
        kind="cpu" if cpu else "gpu",
        instances=instances,
        tensorrt=tensorrt,
        fp16=fp16,
        trt_cache=trt_cache,
        tta=TTAConfig(_parse_scales(scales)) if tta else None,
        bucket=bucket,
        min_side=min_side,
        max_side=max_side,
        warmup_sizes=parse_sizes(warmup_sizes),
    )
    folder = write_repository(model, output, config)
    typer.echo(describe(folder, config))


@app.command("info")
def info_command(
    model: Path = typer.Argument(..., help="An ONNX file written by 'cam-rt export'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Inputs, outputs, metadata and classes of a model, and the providers this machine has."""
    import json

    from .doctor import model_info

    info = model_info(model)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key in ("inputs", "outputs"):
            for io in value:
                shape = "x".join(str(d) for d in io["shape"])
                typer.echo(f"{key[:-1]:<18} {io['name']} ({shape}) {io['type']}")
        elif key == "classes":
            typer.echo(f"{'classes':<18} {len(value)}: {', '.join(value)}")
        else:
            typer.echo(f"{key:<18} {value}")


@app.command("doctor")
def doctor_command() -> None:
    """Check the environment: ONNX Runtime packages and providers, GPU libraries, export."""
    from .doctor import environment_checks

    checks = environment_checks()
    for check in checks:
        typer.echo(f"{check.level:>7}  {check.name:<13} {check.detail}")
    if any(c.level == "error" for c in checks):
        raise typer.Exit(1)


_registered = False


def get_app() -> typer.Typer:
    """The app with every installed plug-in command registered (once)."""
    global _registered
    if not _registered:
        for ep in entry_points(group="cam_rt.commands"):
            ep.load()(app)
        _registered = True
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cam-rt`` script."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answer without loading plug-ins
        print(f"cam-rt {__version__}")
        return
    warnings.showwarning = _show_warning
    get_app()(args=args, prog_name="cam-rt")


def _show_warning(message: Any, category: Any, *_args: Any, **_kwargs: Any) -> None:
    print(f"cam-rt: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    main()
