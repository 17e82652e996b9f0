"""``cam-rt bench`` (latency per input size) and ``cam-rt warmup`` (every shape a run makes,
run once ahead: cuDNN search, TensorRT engine builds, memory planning)."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..backend.session import CamSession
from ..batch.io import write_atomic
from ..plan import warmup_shapes
from ..tools.bench import BenchConfig, SizeResult, bench_model, parse_size, warm_up
from .entry import quiet_notes
from .groups import expand, group
from .options import DeviceOptions, ExplainOptions, ModelFile, split

if TYPE_CHECKING:  # rich is imported when a table is printed, not for --help
    from rich.table import Table

__all__ = ["bench_command", "warmup_command"]

_BENCH = BenchConfig()


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    write_atomic(path, (json.dumps(payload, indent=2) + "\n").encode())


@expand
def bench_command(
    model: ModelFile,
    sizes: Annotated[
        str,
        typer.Option(
            "--sizes",
            help="Input sizes: N (square) or HxW, comma separated (default: the size the file "
            "records, else 224,320).",
        ),
    ] = ",".join(f"{h}x{w}" for h, w in _BENCH.sizes),
    batch: Annotated[int, typer.Option("--batch", help="Images per run.")] = _BENCH.batch,
    repeat: Annotated[int, typer.Option("--repeat", help="Measured runs per size.")] = (
        _BENCH.repeat
    ),
    warmup: Annotated[
        int, typer.Option("--warmup", help="Unmeasured runs per size after the first.")
    ] = _BENCH.warmup,
    explain: ExplainOptions = group(
        ExplainOptions,
        skip=["classes", "threshold", "alpha", "batch_size"],
        help={"tta": "Time the whole TTA explain call, not one model run."},
    ),
    device: DeviceOptions = group(DeviceOptions),
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON.")
    ] = None,
) -> None:
    """Latency of a model per input size: first run on each new shape, then p50/p90/p99."""
    from rich.console import Console

    explain_config = replace(explain.config(), batch_size=max(batch, 1))
    tta = explain_config.tta
    config = BenchConfig(
        input_size=explain_config.input_size,
        sizes=tuple(parse_size(s) for s in split(sizes)),
        batch=batch,
        repeat=repeat,
        warmup=warmup,
        explain=explain_config if tta is not None or explain_config.bucket else None,
    )
    session = CamSession(model, device.session_config(explain_config))
    what = "explain with TTA" if tta else ("explain" if config.explain else "model run")
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
    Console().print(_table(f"{model.name}: {what}, seconds per run of {batch} image(s)", results))
    if json_file is not None:
        _write_json(
            json_file,
            {
                "model": str(model),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "machine": {"processor": platform.processor(), "platform": platform.platform()},
                "providers": session.providers,
                "precision": session.precision,
                "mode": what,
                "tta": None
                if tta is None
                else {"scales": list(tta.scales), "flip": tta.flip, "mode": tta.mode},
                "batch": batch,
                "repeat": repeat,
                "warmup": warmup,
                "sizes": [r.as_dict() for r in results],
            },
        )


def _table(title: str, results: list[SizeResult]) -> Table:
    """The figures of ``bench``, one row per size, in milliseconds."""
    from rich.table import Table

    table = Table(title=title)
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
    return table


@expand
def warmup_command(
    model: ModelFile,
    sizes: Annotated[
        str,
        typer.Option(
            "--sizes", help="Image sizes to warm (N or HxW, comma separated); else the range."
        ),
    ] = "",
    explain: ExplainOptions = group(
        ExplainOptions, skip=["classes", "threshold", "alpha", "input_size"]
    ),
    device: DeviceOptions = group(DeviceOptions, skip=["threads"]),
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Summary only.")] = False,
) -> None:
    """Run every input shape that later runs will make once (cuDNN search, TensorRT engine
    build, memory planning) and report what it cost. Use the options of the later runs."""
    quiet_notes(quiet)
    explain_config = explain.config()
    image_sizes = [parse_size(s) for s in split(sizes)]
    session_config = device.session_config(explain_config)
    start = time.perf_counter()
    session = CamSession(model, session_config)
    opened = time.perf_counter() - start
    if explain_config.batch_flips is None:  # what the runs on this device will do
        explain_config = replace(explain_config, batch_flips=session.on_gpu)
    shapes = warmup_shapes(
        explain_config, image_sizes, device.min_side, device.max_side, session.metadata
    )
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
    line = f"warmed {len(shapes)} shapes in {total:.1f} s"
    if seconds:
        slowest = max(range(len(seconds)), key=seconds.__getitem__)
        n, h, w = shapes[slowest]
        line += f"; slowest {n}x{h}x{w}: {seconds[slowest] * 1e3:.1f} ms"
    typer.echo(line)
    if json_file is not None:
        _write_json(
            json_file,
            {
                "model": str(model),
                "providers": session.providers,
                "session_open_s": opened,
                "total_s": total,
                "shapes": [
                    {"batch": n, "height": h, "width": w, "seconds": t}
                    for (n, h, w), t in zip(shapes, seconds, strict=True)
                ],
            },
        )
