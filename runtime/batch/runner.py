"""``cam-rt run`` as a library: many image files in, result files out, nothing lost.

A run is a pipeline of steps: discover (``inputs``), decode and explain (``steps``), render and
write (``render``), record (``records``). :func:`run_pipeline` is the frame every engine shares:
the output folder, ``--skip-existing``, the journal, the write queue (:class:`Writer`), the
merged ``results.jsonl`` and the ``--grid`` sheet. An engine only turns the items to do into
explained images: :class:`Runner` here (decoding in a thread pool, overlapping inference), or
the Ray engine's actors.

Every file is written atomically; ``results.jsonl`` gets one line per image once all that
image's files exist, so a run that is killed and started again with ``skip_existing`` finishes
the rest and ends with the same files. One output folder has one writer (:class:`FolderLock`,
held for the whole run); a run starts by removing the temporaries a killed run left there.
Whatever one image raises is recorded for it and the run goes on; only the folder's errors
(another run holds it, a full disk: :class:`OutputFolderError`) and signals end a run, and then
what was recorded stays. Memory stays flat however many images there are: decodes and writes
wait in bounded queues.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import CamRtError, ConfigError
from ..explain import Explainer, Label
from .folder import LOCK, FolderLock, OutputFolderError, check_outdir, write_error
from .grid import GridSheet
from .inputs import InputItem, check_shard, discover_inputs, in_shard, labels_for, load_labels
from .io import DEFAULT_MAX_PIXELS, LoadedImage, remove_temporaries
from .journal import RESULTS, Journal
from .records import Events, Ledger, RunSummary, success_record
from .render import (
    OUTPUT_KINDS,
    RenderConfig,
    check_kinds,
    output_path,
    render,
    write_outputs,
)
from .steps import Explained, decode, explain_images, failure

__all__ = [
    "LOCK",
    "OUTPUT_KINDS",
    "RESULTS",
    "Events",
    "ExplainAll",
    "FolderLock",
    "InputItem",
    "OutputFolderError",
    "RunConfig",
    "RunEngine",
    "RunSummary",
    "Runner",
    "Writer",
    "check_outdir",
    "discover_inputs",
    "load_labels",
    "run_pipeline",
]

_RENDER = RenderConfig()  # the render options' defaults, kept in one place


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Options of ``cam-rt run`` beyond the model's (``--save``, ``--bg-threshold``, ...).

    ``images_per_call``: images decoded, then explained together in one ``Explainer.explain``
    call (for the Ray engine: one actor call); None: the explainer's ``batch_size`` (the model
    inputs per ONNX Runtime run, ``--batch-size``). ``shard``: (I, N), run only part I of N
    of the inputs (``--shard I/N``, see :func:`~cam_rt.runtime.batch.inputs.in_shard`).
    """

    save: tuple[str, ...] = _RENDER.save
    bg_threshold: float = _RENDER.bg_threshold
    box_threshold: float = _RENDER.box_threshold
    colormap: str = _RENDER.colormap
    overlay_alpha: float = _RENDER.overlay_alpha
    max_pixels: int = DEFAULT_MAX_PIXELS
    skip_existing: bool = False
    grid: Path | None = None
    decode_workers: int = 2
    write_workers: int = 2
    images_per_call: int | None = None
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _ = self.render  # validates the render options
        if self.shard is not None:
            check_shard(self.shard)
        if self.max_pixels < 1:
            raise ConfigError(f"--max-pixels {self.max_pixels} must be positive")
        for name in ("decode_workers", "write_workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} {value!r} must be an integer >= 1")
        per_call = self.images_per_call
        if per_call is not None and (
            not isinstance(per_call, int) or isinstance(per_call, bool) or per_call < 1
        ):
            raise ConfigError(f"images_per_call {per_call!r} must be an integer >= 1 or None")

    @property
    def render(self) -> RenderConfig:
        """The render step's options."""
        return RenderConfig(
            self.save, self.bg_threshold, self.box_threshold, self.colormap, self.overlay_alpha
        )

    def per_call(self, batch_size: int) -> int:
        """Images per explain call, given the explainer's ``batch_size``."""
        return self.images_per_call or batch_size


class Writer:
    """The render, write and record steps: each explained image is rendered and written by a
    pool thread, at most ``4 * write_workers`` wait (bounded memory), and they are recorded in
    order, each once. Whatever an image's render or write raises fails that image, except an
    :class:`OutputFolderError` (a full disk), which ends the run. After an interrupt,
    :meth:`drain` finishes the writes already started (each file is atomic) and cancels the
    others; after the run's error, :meth:`abandon` records nothing more."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        outdir: Path,
        config: RunConfig,
        ledger: Ledger,
        grid: GridSheet | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        self.outdir = outdir
        self.config = config
        self.ledger = ledger
        self.grid = grid
        self.class_names = class_names  # the model's: the records' top 5 are named
        self._pool = pool
        self._render = config.render
        self._queue: deque[tuple[InputItem, Future[dict[str, Any]]]] = deque()

    def failed(self, item: InputItem, exc: BaseException, step: str = "processing") -> None:
        """Record ``item`` as failed (a step before writing raised ``exc``)."""
        self.ledger.failed(item, failure(exc, step))

    def put(self, explained: Explained) -> None:
        """Queue the image's writes; records the finished ones at the head of the queue."""
        while len(self._queue) >= self.config.write_workers * 4:
            self._collect_head()
        self._queue.append((explained.item, self._pool.submit(self.write, explained)))
        while self._queue and self._queue[0][1].done():
            self._collect_head()

    def drain(self, interrupted: bool = False) -> None:
        """Record every queued image; ``interrupted``: cancel the writes not started yet."""
        while self._queue:
            if interrupted and self._queue[0][1].cancel():
                self._queue.popleft()
            else:
                self._collect_head()

    def abandon(self) -> None:
        """After a run's error: cancel the writes not started and record nothing more (an
        image written but not recorded is done again by a resume)."""
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()

    def write(self, explained: Explained) -> dict[str, Any]:
        """Render and write one image's files; its success record."""
        start = time.perf_counter()
        item, result, image = explained.item, explained.result, explained.image
        rendered = render(item.name, result, image.pixels, self._render)
        written = write_outputs(self.outdir, rendered, self.config.save)
        if self.grid is not None:
            self.grid.add(item.name, image.pixels, rendered.overlay, rendered.caption)
        timings = {**explained.timings, "write_s": round(time.perf_counter() - start, 6)}
        return success_record(
            item,
            result,
            image.conversions,
            rendered.largest_boxes,
            written,
            timings,
            rendered.output_errors,
            self.class_names,
        )

    def _collect_head(self) -> None:
        """Record the oldest queued image (waiting for its writes); dequeued only once
        recorded, so an interrupt while waiting still records it."""
        item, future = self._queue[0]
        if not self.ledger.has(item.name):
            try:
                record = future.result()
            except OutputFolderError:  # e.g. a full disk: the run's error, not this image's
                raise
            except Exception as exc:
                self.ledger.failed(item, failure(exc, "rendering or writing"))
            else:
                self.ledger.done(record)
        self._queue.popleft()


#: An engine's part of a run: explain the items to do, give each to the writer (or record it
#: as failed through the writer).
ExplainAll = Callable[[Sequence[InputItem], Writer], None]


class RunEngine(Protocol):
    """What the CLI runs: the local :class:`Runner` or the Ray engine."""

    def run(self, items: Sequence[InputItem]) -> RunSummary: ...


def run_pipeline(
    items: Sequence[InputItem],
    outdir: Path,
    config: RunConfig,
    explain_all: ExplainAll,
    events: Events | None = None,
    class_names: Sequence[str] | None = None,
) -> RunSummary:
    """Run ``explain_all`` over ``items`` (those already recorded and written are skipped with
    ``skip_existing``; only part I of N with ``shard``); returns the summary (``interrupted``
    after Ctrl-C / SIGTERM). ``class_names``: the model's, to refuse a ``--save`` kind that
    cannot work with it (ConfigError, before any work) and to name the records' top 5.
    ConfigError if another run holds ``outdir``; :class:`OutputFolderError` if it fills up or
    fails (what was recorded stays)."""
    if class_names is not None:
        check_kinds(config.save, len(class_names))
    outdir = Path(outdir)
    check_outdir(outdir)
    sheet = None if config.grid is None else GridSheet(config.grid, items, config.max_pixels)
    if sheet is not None:
        sheet.check_writable()
    with FolderLock(outdir):
        try:
            remove_temporaries(outdir, recursive=True)
        except OSError as exc:
            raise write_error(outdir, outdir, exc) from exc
        return _run_locked(items, outdir, config, explain_all, events, sheet, class_names or ())


def _run_locked(
    items: Sequence[InputItem],
    outdir: Path,
    config: RunConfig,
    explain_all: ExplainAll,
    events: Events | None,
    sheet: GridSheet | None,
    class_names: Sequence[str],
) -> RunSummary:
    start = time.perf_counter()
    emit = events or (lambda _kind, _data: None)
    shard = config.shard
    mine = items if shard is None else [item for item in items if in_shard(item.name, shard)]
    summary = RunSummary(total=len(mine))
    journal = Journal(outdir)
    keep: bool | Callable[[str], bool] = True  # previous lines merged into results.jsonl
    if config.skip_existing:
        recorded = journal.recorded(lambda text: emit("warning", {"message": text}))
    else:
        journal.clear()  # a killed run's leftovers are not this run's
        recorded = set()
        keep = False if shard is None else (lambda name: not in_shard(name, shard))
    finished = False  # the run ended (done or interrupted), not by an error
    try:
        with (
            journal,
            ThreadPoolExecutor(config.write_workers, thread_name_prefix="cam-rt-write") as pool,
        ):
            ledger = Ledger(journal, summary, emit)
            todo = [
                item
                for item in mine
                if item.name not in recorded
                or not all(output_path(outdir, item.name, k).is_file() for k in config.save)
            ]
            ledger.start(len(mine), len(mine) - len(todo))
            writer = Writer(pool, outdir, config, ledger, sheet, class_names)
            try:
                explain_all(todo, writer)
                writer.drain()
            except KeyboardInterrupt:
                writer.drain(interrupted=True)
                raise
            except BaseException:
                writer.abandon()
                raise
        finished = True
    except KeyboardInterrupt:
        summary.interrupted = finished = True
    finally:
        try:
            records = journal.merge(items, keep_results=keep)
            if sheet is not None:
                sheet.write(outdir, records)
        except CamRtError:
            if finished:  # else the error that ended the run is the one to report
                raise
        summary.seconds = time.perf_counter() - start
    return summary


class Runner:
    """Runs an :class:`Explainer` over image files and writes the outputs under ``outdir``
    (the local engine: decoding in ``decode_workers`` threads, ahead of inference)."""

    def __init__(
        self,
        explainer: Explainer,
        outdir: Path,
        config: RunConfig | None = None,
        labels: Mapping[str, Sequence[Label]] | None = None,
        events: Events | None = None,
    ) -> None:
        self.explainer = explainer
        self.outdir = Path(outdir)
        self.config = config or RunConfig()
        self.labels = labels
        self.events = events
        self.images_per_call = self.config.per_call(explainer.config.batch_size)

    def outputs_of(self, item: InputItem) -> list[Path]:
        return [output_path(self.outdir, item.name, k) for k in self.config.save]

    def run(self, items: Sequence[InputItem]) -> RunSummary:
        """Process ``items``; returns the summary (``interrupted`` after Ctrl-C / SIGTERM).
        ConfigError first for a ``--save`` kind that cannot work with the model."""
        names = self.explainer.session.class_names
        return run_pipeline(items, self.outdir, self.config, self.explain_all, self.events, names)

    def explain_all(self, todo: Sequence[InputItem], writer: Writer) -> None:
        """The local engine: decode ahead in a bounded window, explain ``images_per_call``
        images at a time, hand each to ``writer``."""
        cfg, per_call = self.config, self.images_per_call
        window = per_call * 2 + cfg.decode_workers
        pending: deque[tuple[InputItem, Future[tuple[LoadedImage, float]]]] = deque()
        source: Iterator[InputItem] = iter(todo)
        with ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="cam-rt-decode") as pool:

            def refill() -> None:
                while len(pending) < window:
                    item = next(source, None)
                    if item is None:
                        return
                    pending.append((item, pool.submit(decode, item.path, cfg.max_pixels)))

            try:
                refill()
                while pending:
                    batch: list[tuple[InputItem, LoadedImage, float]] = []
                    while pending and len(batch) < per_call:
                        item, future = pending.popleft()
                        try:
                            batch.append((item, *future.result()))
                        except Exception as exc:  # whatever the decoder raised: this image
                            writer.failed(item, exc, "decoding")
                        refill()
                    self.explain_batch(batch, writer)
            except BaseException:  # an interrupt, or the run's error: stop decoding
                for _, decoding in pending:
                    decoding.cancel()
                raise

    def explain_batch(
        self, batch: Sequence[tuple[InputItem, LoadedImage, float]], writer: Writer
    ) -> None:
        """Explain decoded images (item, image, decode seconds) in one call; each to
        ``writer`` (an image without labels in the labels file, or that fails, is recorded)."""
        ready = []
        for item, loaded, seconds in batch:
            try:
                ready.append((item, loaded, seconds, labels_for(item, self.labels)))
            except Exception as exc:
                writer.failed(item, exc, "finding its labels")
        images, labels = [r[1] for r in ready], [r[3] for r in ready]
        results, share = explain_images(self.explainer, images, labels)
        for (item, loaded, seconds, _), result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                writer.failed(item, result, "explaining")
            else:
                timings = {"decode_s": round(seconds, 6), "explain_s": round(share, 6)}
                writer.put(Explained(item, result, loaded, timings))
