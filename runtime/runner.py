"""``cam-rt run`` as a library: many image files in, result files out, nothing lost.

Decoding (a thread pool) and encoding/writing (another) overlap with inference through bounded
queues, so memory stays flat however many images there are. Every file is written atomically;
``results.jsonl`` gets one line per image once all that image's files exist, so a run that is
killed and started again with ``skip_existing`` finishes the rest and ends with the same files.
One bad image is recorded and the run goes on.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .colour import blend, class_overlay, grid, heatmap_overlay
from .cues import boxes, seeds
from .errors import CamRtError, ConfigError, InputError
from .explain import CamResult, Explainer, Label
from .io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    LoadedImage,
    encode_json,
    encode_npz,
    encode_palette_png,
    encode_png,
    read_image,
    write_atomic,
)


def _small(picture: np.ndarray, side: int = 256) -> np.ndarray:
    scale = min(1.0, side / max(picture.shape[:2]))
    size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
    return np.asarray(cv2.resize(picture, size, interpolation=cv2.INTER_AREA))


def _reason(exc: BaseException) -> Exception:
    if isinstance(exc, MemoryError):
        return InputError("not enough memory for this image: lower --batch-size or --max-pixels")
    assert isinstance(exc, Exception)
    return exc


__all__ = [
    "OUTPUT_KINDS",
    "InputItem",
    "RunConfig",
    "RunSummary",
    "Runner",
    "discover_inputs",
    "load_labels",
]

OUTPUT_KINDS = {
    "overlay": ".overlay.png",
    "heatmap": ".heatmap.png",
    "maps": ".maps.npz",
    "seeds": ".seeds.png",
    "boxes": ".boxes.json",
}
RESULTS = "results.jsonl"
JOURNAL = ".results.journal.jsonl"


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Options of ``cam-rt run`` beyond the model's (``--save``, ``--bg-threshold``, ...)."""

    save: tuple[str, ...] = ("overlay", "maps")
    bg_threshold: float = 0.3
    box_threshold: float = 0.2
    colormap: str = "jet"
    overlay_alpha: float = 0.5
    max_pixels: int = DEFAULT_MAX_PIXELS
    skip_existing: bool = False
    grid: Path | None = None
    decode_workers: int = 2
    write_workers: int = 2

    def __post_init__(self) -> None:
        if not self.save:
            raise ConfigError(f"--save is empty: name at least one of {','.join(OUTPUT_KINDS)}")
        unknown = [s for s in self.save if s not in OUTPUT_KINDS]
        if unknown:
            raise ConfigError(
                f"--save {','.join(unknown)} is unknown: use any of {','.join(OUTPUT_KINDS)}"
            )
        if not 0.0 <= self.bg_threshold <= 1.0:
            raise ConfigError(f"--bg-threshold {self.bg_threshold} is outside [0, 1]")
        if not 0.0 < self.box_threshold <= 1.0:
            raise ConfigError(f"box threshold {self.box_threshold} must be in (0, 1]")
        if self.max_pixels < 1:
            raise ConfigError(f"--max-pixels {self.max_pixels} must be positive")
        if self.decode_workers < 1 or self.write_workers < 1:
            raise ConfigError("worker counts must be >= 1")


@dataclass(frozen=True, slots=True)
class InputItem:
    """An input file and its output name (relative path without extension, '/'-separated)."""

    path: Path
    name: str


def discover_inputs(inputs: Sequence[str | Path], exclude: Sequence[Path] = ()) -> list[InputItem]:
    """Files, folders (recursive) and globs -> items with collision-free output names.

    Names keep the folder structure below the deepest folder common to all inputs, so
    ``a/x.png`` and ``b/x.png`` become ``a/x`` and ``b/x``; files whose names would collide
    (``x.jpg`` and ``x.png``) keep their extension. Files under an ``exclude`` folder (the output
    folder) are left out, so outputs are never read back as inputs.
    """
    files: list[Path] = []
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(text):
            files.extend(
                sorted(
                    Path(p)
                    for p in glob.glob(text, recursive=True)
                    if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES
                )
            )
        else:
            raise InputError(f"input '{text}' does not exist: pass image files, folders or globs")
    excluded = [e.resolve() for e in exclude]
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in files:
        real = f.resolve()
        if real in seen or any(real.is_relative_to(e) for e in excluded):
            continue
        seen.add(real)
        unique.append(Path(os.path.abspath(f)))  # names follow the path given, not link targets
    if not unique:
        raise InputError(
            "no images found in the inputs (looked for " + ", ".join(IMAGE_SUFFIXES) + ")"
        )
    root = Path(os.path.commonpath([str(p.parent) for p in unique]))
    names = [p.relative_to(root).with_suffix("").as_posix() for p in unique]
    while True:  # a colliding name becomes the full relative path, until all are unique
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        clashes = [i for i, n in enumerate(names) if counts[n] > 1]
        if not clashes:
            break
        for i in clashes:
            names[i] = unique[i].relative_to(root).as_posix()
    return [InputItem(p, n) for p, n in zip(unique, names, strict=True)]


def load_labels(path: Path) -> dict[str, list[Label]]:
    """Per-image labels: JSON ``{"name": ["cat", 7]}`` or text lines ``name label label``.

    ``name`` is matched against an image's output name, its file name or its stem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {path}: {exc}") from exc
    out: dict[str, list[Label]] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"labels file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"labels file {path} must hold an object {{name: [labels]}}")
        for key, value in data.items():
            values = value if isinstance(value, list) else [value]
            out[str(key)] = [v if isinstance(v, int) else str(v) for v in values]
        return out
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        out[parts[0]] = [int(v) if v.isdigit() else v for v in parts[1:]]
        if not parts[1:]:
            raise InputError(f"labels file {path} line {number} names no labels for {parts[0]}")
    return out


@dataclass
class RunSummary:
    """Counts of a run; ``exit_code`` follows the CLI's contract."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    conversions: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 2 if self.failed else 0


Events = Callable[[str, Mapping[str, Any]], None]


class Runner:
    """Runs an :class:`Explainer` over image files and writes the outputs under ``outdir``."""

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
        self._events = events or (lambda _kind, _data: None)
        self.batch_size = explainer.config.batch_size
        self._class_names = explainer.session.class_names

    # -- paths ---------------------------------------------------------------------------
    def outputs_of(self, item: InputItem) -> list[Path]:
        return [self.outdir / (item.name + OUTPUT_KINDS[k]) for k in self.config.save]

    def _check_outdir(self) -> None:
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
            probe = self.outdir / f".cam-rt-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"output folder {self.outdir} is not writable ({exc.strerror or exc}): choose "
                "another -o folder"
            ) from exc
        grid_file = self.config.grid
        if grid_file is not None:
            grid_file = Path(grid_file)
            try:
                if grid_file.is_dir():
                    raise OSError("it is a folder")
                grid_file.parent.mkdir(parents=True, exist_ok=True)
                probe = grid_file.parent / f".cam-rt-write-test-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ConfigError(
                    f"--grid {grid_file} cannot be written ({reason}): give a PNG file path"
                ) from exc

    # -- the run -------------------------------------------------------------------------
    def run(self, items: Sequence[InputItem]) -> RunSummary:
        """Process ``items``; returns the summary (``interrupted`` after Ctrl-C / SIGTERM)."""
        self._check_outdir()
        start = time.perf_counter()
        summary = RunSummary(total=len(items))
        journal_path = self.outdir / JOURNAL
        recorded = self._recorded() if self.config.skip_existing else set()
        if not self.config.skip_existing:
            journal_path.unlink(missing_ok=True)  # a killed run's leftovers are not this run's
        journal = journal_path.open("a", encoding="utf-8")
        self._thumbs: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
        self._grid_names = [item.name for item in items[:8]]
        try:
            todo = []
            for item in items:
                done = item.name in recorded and all(p.is_file() for p in self.outputs_of(item))
                if done:
                    summary.skipped += 1
                else:
                    todo.append(item)
            self._events("start", {"total": len(items), "skipped": summary.skipped})
            self._process(todo, summary, journal)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            journal.close()
            self._finish_results(items)
            if self.config.grid is not None:
                self._write_grid(items)
            summary.seconds = time.perf_counter() - start
        return summary

    def _process(self, todo: Sequence[InputItem], summary: RunSummary, journal: Any) -> None:
        cfg = self.config
        with (
            ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="cam-rt-decode") as decode,
            ThreadPoolExecutor(cfg.write_workers, thread_name_prefix="cam-rt-write") as write,
        ):
            window = self.batch_size * 2 + cfg.decode_workers
            pending: deque[tuple[InputItem, Future[tuple[LoadedImage, float]]]] = deque()
            writes: deque[tuple[InputItem, Future[dict[str, Any]]]] = deque()
            source: Iterator[InputItem] = iter(todo)

            def refill() -> None:
                while len(pending) < window:
                    item = next(source, None)
                    if item is None:
                        return
                    pending.append((item, decode.submit(self._decode, item)))

            try:
                refill()
                while pending:
                    batch: list[tuple[InputItem, LoadedImage, float]] = []
                    while pending and len(batch) < self.batch_size:
                        item, future = pending.popleft()
                        try:
                            loaded, seconds = future.result()
                            batch.append((item, loaded, seconds))
                        except (CamRtError, MemoryError) as exc:
                            self._record_error(item, _reason(exc), summary, journal)
                        refill()
                    for item, result, loaded, timing in self._explain(batch, summary, journal):
                        self._queue_write(
                            write, writes, (item, result, loaded, timing), summary, journal
                        )
                self._drain(writes, summary, journal)
            except KeyboardInterrupt:
                for _, decoding in pending:
                    decoding.cancel()
                self._drain(writes, summary, journal, interrupted=True)
                raise

    def _queue_write(
        self,
        pool: ThreadPoolExecutor,
        writes: deque[tuple[InputItem, Future[dict[str, Any]]]],
        job: tuple[InputItem, CamResult, LoadedImage, dict[str, float]],
        summary: RunSummary,
        journal: Any,
    ) -> None:
        """Submit one image's writes; at most ``4 * write_workers`` wait (bounded memory), and
        finished ones at the head are recorded, in order."""
        while len(writes) >= self.config.write_workers * 4:
            self._collect(*writes[0], summary, journal)
            writes.popleft()
        writes.append((job[0], pool.submit(self._write, *job)))
        while writes and writes[0][1].done():
            self._collect(*writes[0], summary, journal)
            writes.popleft()  # only once recorded: an interrupt still sees it

    def _drain(
        self,
        writes: deque[tuple[InputItem, Future[dict[str, Any]]]],
        summary: RunSummary,
        journal: Any,
        interrupted: bool = False,
    ) -> None:
        """Record the queued writes; after an interrupt, only those already started (each file
        is atomic) finish, the others are cancelled."""
        while writes:
            item, writing = writes[0]
            if not (interrupted and writing.cancel()):
                self._collect(item, writing, summary, journal)
            writes.popleft()

    def _decode(self, item: InputItem) -> tuple[LoadedImage, float]:
        start = time.perf_counter()
        loaded = read_image(item.path, self.config.max_pixels)
        return loaded, time.perf_counter() - start

    def _labels_for(self, item: InputItem) -> Sequence[Label] | None:
        if self.labels is None:
            return None
        for key in (item.name, item.path.name, item.path.stem):
            if key in self.labels:
                return self.labels[key]
        raise InputError(f"the labels file has no entry for {item.name}")

    def _explain(
        self,
        batch: list[tuple[InputItem, LoadedImage, float]],
        summary: RunSummary,
        journal: Any,
    ) -> list[tuple[InputItem, CamResult, LoadedImage, dict[str, float]]]:
        """Explain a batch; if it fails, each image alone, so one bad image fails alone."""
        ready: list[tuple[InputItem, LoadedImage, float, Sequence[Label] | None]] = []
        for item, loaded, seconds in batch:
            try:
                ready.append((item, loaded, seconds, self._labels_for(item)))
            except CamRtError as exc:
                self._record_error(item, exc, summary, journal)
        if not ready:
            return []
        try:
            return self._explain_group(ready)
        except (CamRtError, MemoryError) as exc:
            if len(ready) == 1:
                self._record_error(ready[0][0], _reason(exc), summary, journal)
                return []
        out = []
        for one in ready:  # isolate the image that failed the batch
            try:
                out.extend(self._explain_group([one]))
            except (CamRtError, MemoryError) as exc:
                self._record_error(one[0], _reason(exc), summary, journal)
        return out

    def _explain_group(
        self, group: list[tuple[InputItem, LoadedImage, float, Sequence[Label] | None]]
    ) -> list[tuple[InputItem, CamResult, LoadedImage, dict[str, float]]]:
        labels = None if self.labels is None else [g[3] or () for g in group]
        start = time.perf_counter()
        results = self.explainer.explain([g[1].pixels for g in group], labels=labels)
        share = (time.perf_counter() - start) / len(group)
        return [
            (item, result, loaded, {"decode_s": round(dec, 6), "explain_s": round(share, 6)})
            for (item, loaded, dec, _), result in zip(group, results, strict=True)
        ]

    def _write(
        self, item: InputItem, result: CamResult, loaded: LoadedImage, timing: dict[str, float]
    ) -> dict[str, Any]:
        start = time.perf_counter()
        cfg = self.config
        image = loaded.pixels
        base = self.outdir / item.name
        ids, names = list(result.class_ids), list(result.class_names)
        found = []
        for c, cid in enumerate(ids):
            regions = boxes(result.maps[..., c], cid, cfg.box_threshold, mode="all")
            found.append(
                {
                    "class_id": cid,
                    "class_name": names[c],
                    "largest": regions[0].as_list() if regions else None,
                    "all": [
                        {"box": b.as_list(), "area": b.area, "peak": round(b.peak, 4)}
                        for b in regions
                    ],
                }
            )
        overlay = blend(image, class_overlay(result.maps, ids), cfg.overlay_alpha)
        files = {
            "overlay": lambda: encode_png(overlay),
            "heatmap": lambda: encode_png(
                heatmap_overlay(
                    image,
                    result.maps.max(axis=2) if ids else np.zeros(image.shape[:2], np.float32),
                    cfg.colormap,
                )
            ),
            "maps": lambda: encode_npz(
                maps=result.maps.astype(np.float16),
                class_ids=np.asarray(ids, np.int32),
                class_names=np.asarray(names, dtype=str),
                scores=result.scores,
                probabilities=result.probabilities,
            ),
            "seeds": lambda: encode_palette_png(seeds(result.maps, ids, cfg.bg_threshold)),
            "boxes": lambda: encode_json(
                {
                    "image": item.name,
                    "size": list(result.size),
                    "threshold": cfg.box_threshold,
                    "boxes": found,
                }
            ),
        }
        written = []
        for kind in cfg.save:
            path = Path(str(base) + OUTPUT_KINDS[kind])
            write_atomic(path, files[kind]())
            written.append(path.relative_to(self.outdir).as_posix())
        if cfg.grid is not None and item.name in self._grid_names:
            self._thumb(image, overlay, item, result)
        timing["write_s"] = round(time.perf_counter() - start, 6)
        probs = result.probabilities
        return {
            "name": item.name,
            "input": str(item.path),
            "size": list(result.size),
            "conversions": list(loaded.conversions),
            "classes": [
                {"id": cid, "name": n, "probability": round(float(probs[cid]), 6)}
                for cid, n in zip(ids, names, strict=True)
            ],
            "scores": [round(float(s), 6) for s in result.scores],
            "boxes": [{"class_id": f["class_id"], "box": f["largest"]} for f in found],
            "outputs": written,
            "timings": timing,
        }

    def _thumb(self, image: np.ndarray, overlay: np.ndarray, item: InputItem, r: CamResult) -> None:
        title = ", ".join(r.class_names[:2]) or "(no class)"
        self._thumbs[item.name] = (_small(image), _small(overlay), title)  # dict set: atomic

    def _write_grid(self, items: Sequence[InputItem]) -> None:
        """The first 8 inputs and their overlays (re-read from disk for skipped images)."""
        assert self.config.grid is not None
        pictures, titles = [], []
        for item in items[:8]:
            thumb = self._thumbs.get(item.name)
            overlay_file = self.outdir / (item.name + OUTPUT_KINDS["overlay"])
            if thumb is None and overlay_file.is_file():
                try:
                    from PIL import Image

                    with Image.open(overlay_file) as im:
                        overlay = np.asarray(im.convert("RGB"))
                    image = read_image(item.path, self.config.max_pixels).pixels
                    record = self._records.get(item.name, {})
                    names = [c["name"] for c in record.get("classes", [])][:2]
                    thumb = (_small(image), _small(overlay), ", ".join(names) or "(no class)")
                except (CamRtError, OSError):
                    thumb = None
            if thumb is not None:
                pictures += [thumb[0], thumb[1]]
                titles += [item.name, thumb[2]]
        if pictures:
            write_atomic(Path(self.config.grid), encode_png(grid(pictures, titles, columns=8)))

    # -- records -------------------------------------------------------------------------
    def _collect(
        self, item: InputItem, future: Future[dict[str, Any]], summary: RunSummary, journal: Any
    ) -> None:
        try:
            record = future.result()
        except (CamRtError, OSError, MemoryError) as exc:  # e.g. disk full: this image failed
            self._record_error(item, _reason(exc), summary, journal)
            return
        self._journal(journal, record)
        summary.done += 1
        for conversion in record["conversions"]:
            first = conversion not in summary.conversions
            summary.conversions[conversion] = summary.conversions.get(conversion, 0) + 1
            if first:
                self._events("conversion", {"kind": conversion, "name": record["name"]})
        self._events("done", {"record": record})

    def _record_error(
        self, item: InputItem, exc: Exception, summary: RunSummary, journal: Any
    ) -> None:
        summary.failed += 1
        record = {"name": item.name, "input": str(item.path), "error": str(exc)}
        self._journal(journal, record)
        self._events("failed", {"record": record})

    @staticmethod
    def _journal(journal: Any, record: Mapping[str, Any]) -> None:
        journal.write(json.dumps(record) + "\n")
        journal.flush()

    def _recorded(self) -> set[str]:
        """Images with a success line in results.jsonl or a killed run's journal."""
        done = set()
        for path in (self.outdir / RESULTS, self.outdir / JOURNAL):
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and "error" not in record and "name" in record:
                        done.add(record["name"])
        return done

    def _finish_results(self, items: Sequence[InputItem]) -> None:
        """Merge results.jsonl and the journal (newest line per image wins), in input order."""
        records: dict[str, str] = {}
        for path in (self.outdir / RESULTS, self.outdir / JOURNAL):
            if not path.is_file():
                continue
            if path.name == RESULTS and not self.config.skip_existing:
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    name = json.loads(line)["name"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a kill
                records[name] = line
        order = {item.name: i for i, item in enumerate(items)}
        names = sorted(records, key=lambda n: (order.get(n, len(order)), n))
        self._records = {n: json.loads(records[n]) for n in names[:8]}
        write_atomic(self.outdir / RESULTS, "".join(records[n] + "\n" for n in names).encode())
        (self.outdir / JOURNAL).unlink(missing_ok=True)
