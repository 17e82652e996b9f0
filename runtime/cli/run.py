"""``cam-rt run``: CAMs for image files, written under an output folder (local or on Ray)."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import typer

from ..batch.inputs import parse_shard
from ..batch.ray_engine import RayConfig, RayRunner
from ..batch.report import write_run_report
from ..batch.runner import RunConfig, RunEngine, Runner, discover_inputs, load_labels
from ..errors import ConfigError
from ..explain import ExplainConfig, Explainer
from .entry import quiet_notes
from .groups import choice, expand, group
from .options import (
    DeviceOptions,
    ExplainOptions,
    ModelFile,
    open_model,
    split,
    warn_repeated_names,
)
from .progress import Progress

__all__ = ["run_command"]

Engine = Literal["local", "ray"]

_RUN = RunConfig()
_RAY = RayConfig()


@expand
def run_command(
    model: ModelFile,
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders (recursive) or globs.")],
    outdir: Annotated[Path, typer.Option("-o", "--outdir", help="Folder for the outputs.")],
    explain: ExplainOptions = group(ExplainOptions),
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="Per-image labels: JSON {name: [labels]} or 'name label ...' lines."
        ),
    ] = None,
    device: DeviceOptions = group(DeviceOptions, skip=["threads"]),
    bg_threshold: Annotated[
        float, typer.Option("--bg-threshold", help="Background score of the segmentation seeds.")
    ] = _RUN.bg_threshold,
    save: Annotated[
        str, typer.Option("--save", help="Any of overlay,heatmap,colors,maps,seeds,boxes.")
    ] = ",".join(_RUN.save),
    grid_file: Annotated[
        Path | None, typer.Option("--grid", help="Also write a grid picture of the first images.")
    ] = _RUN.grid,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Resume: skip images whose outputs all exist.")
    ] = _RUN.skip_existing,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard", metavar="I/N", help="Run only part I of N of the inputs (array jobs)."
        ),
    ] = None,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", help="Refuse larger images (decompression bombs).")
    ] = _RUN.max_pixels,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, errors only.")] = False,
    engine: Annotated[
        Engine, choice("--engine", help="local, or ray (a pool of Ray actors).")
    ] = "local",
    ray_address: Annotated[
        str,
        typer.Option(
            "--ray-address",
            help="Ray: a cluster to join ('auto', ray://host:10001); default local.",
        ),
    ] = _RAY.address,
    num_workers: Annotated[
        int, typer.Option("--num-workers", help="Ray: actors (one session each).")
    ] = _RAY.num_workers,
    gpus_per_worker: Annotated[
        float,
        typer.Option("--gpus-per-worker", help="Ray: GPUs per actor (fractions share a GPU)."),
    ] = _RAY.gpus_per_worker,
    report: Annotated[
        bool,
        typer.Option(
            "--report", help="Also write OUTDIR/index.html: a report of the run (no server)."
        ),
    ] = False,
) -> None:
    """Compute CAMs for images and write overlays, maps, seeds and boxes.

    Exit code: 0 all done, 2 some inputs failed, 1 nothing could run or the run had to stop
    (another run writes the folder, the disk is full), 130 interrupted.
    """
    if engine not in get_args(Engine):
        raise ConfigError(f"--engine '{engine}' is unknown: use local or ray")
    explain_config = replace(explain.config(), max_input_pixels=max_pixels)
    run_config = RunConfig(
        save=tuple(split(save)),
        bg_threshold=bg_threshold,
        max_pixels=max_pixels,
        skip_existing=skip_existing,
        grid=grid_file,
        shard=None if shard is None else parse_shard(shard),
    )
    items = discover_inputs(inputs, exclude=[outdir])
    label_map = load_labels(labels) if labels is not None else None
    quiet_notes(quiet)
    progress = Progress(quiet)
    events = progress.event  # warnings too, e.g. damaged lines of the records a resume reads
    session_config = device.session_config(explain_config)
    runner: RunEngine
    if engine == "ray":  # the driver reads the file's metadata only; the actors open it
        ray_config = RayConfig(
            address=ray_address, num_workers=num_workers, gpus_per_worker=gpus_per_worker
        )
        ray_runner = RayRunner(
            model,
            explain_config,
            outdir,
            run_config,
            label_map,
            events,
            ray_config,
            session_config=session_config,
        )
        warn_repeated_names(model, ray_runner.metadata.class_names)
        runner = ray_runner
    else:
        explainer = Explainer(open_model(model, session_config), explain_config)
        for values in (label_map or {}).values():  # unknown classes: say so before any work
            explainer.resolve_labels(values)
        runner = Runner(explainer, outdir, run_config, label_map, events)
    class_names = (
        ray_runner.metadata.class_names if engine == "ray" else explainer.session.class_names
    )
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
    if report:  # from the merged results.jsonl: a resumed run's report is the whole run's
        settings = _settings(model, class_names, explain_config, run_config, labels)
        pages = write_run_report(outdir, settings)
        if not quiet:
            typer.echo(f"cam-rt: report: {pages[0]} ({len(pages)} page(s))", err=True)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _settings(
    model: Path,
    class_names: Sequence[str],
    explain: ExplainConfig,
    run: RunConfig,
    labels: Path | None,
) -> list[tuple[str, str]]:
    """What the report shows of the run's options (those that shape its outputs; not the
    engine or --skip-existing, so a resumed run's report is the same)."""
    shown = ", ".join(class_names[:50]) + (" ..." if len(class_names) > 50 else "")
    tta = explain.tta
    size = explain.input_size
    classes = explain.classes
    return [
        ("model", str(model)),
        ("classes", f"{len(class_names)}: {shown}"),
        (
            "explained classes",
            {
                "top-k": f"top-{classes.k}",
                "fixed": ", ".join(map(str, classes.labels)),
                "predicted": f"predicted (threshold {classes.threshold:g})",
            }.get(classes.mode, classes.mode),
        ),
        ("labels", "-" if labels is None else str(labels)),
        (
            "TTA",
            "off"
            if tta is None
            else f"scales {', '.join(f'{s:g}' for s in tta.scales)}; flip {tta.flip}; {tta.mode}",
        ),
        (
            "input size",
            "x".join(map(str, size.size)) if size.size else f"{size.mode} {size.side or ''}",
        ),
        ("outputs", ", ".join(run.save)),
        ("background threshold", f"{run.bg_threshold:g}"),
        ("max pixels", str(run.max_pixels)),
        ("shard", "-" if run.shard is None else f"{run.shard[0]}/{run.shard[1]}"),
    ]


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops a run as Ctrl-C does: finished images kept, exit code 130."""
    raise KeyboardInterrupt
