"""The record step of a run: the ``results.jsonl`` line format, the journal, and the summary.

Each image gets one JSON line once all its files exist: a success record (:func:`success_record`:
name, input, size, conversions, classes, scores, boxes, outputs, timings) or an error record
(:func:`error_record`: name, input, error). During a run the lines are appended to a journal
(``.results.journal.jsonl``, flushed per line); at the end the journal is merged into
``results.jsonl`` in input order, so a killed run leaves a journal the next ``--skip-existing``
run reads (:meth:`Journal.recorded`) and merges.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from ..explain import CamResult
from .inputs import InputItem
from .io import write_atomic

__all__ = [
    "JOURNAL",
    "RESULTS",
    "Events",
    "Journal",
    "Ledger",
    "RunSummary",
    "error_record",
    "success_record",
]

RESULTS = "results.jsonl"
JOURNAL = ".results.journal.jsonl"

#: ``events(kind, data)``: ``start`` {total, skipped}, ``done`` {record}, ``failed`` {record},
#: ``conversion`` {kind, name} (the first image that needed each conversion).
Events = Callable[[str, Mapping[str, Any]], None]


def success_record(
    item: InputItem,
    result: CamResult,
    conversions: Sequence[str],
    boxes: Sequence[tuple[int, list[int] | None]],
    outputs: Sequence[str],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """The results line of an image written: ``boxes`` are (class id, largest box or None) per
    explained class, ``outputs`` the files written (relative to the output folder)."""
    probs = result.probabilities
    return {
        "name": item.name,
        "input": str(item.path),
        "size": list(result.size),
        "conversions": list(conversions),
        "classes": [
            {"id": cid, "name": n, "probability": round(float(probs[cid]), 6)}
            for cid, n in zip(result.class_ids, result.class_names, strict=True)
        ],
        "scores": [round(float(s), 6) for s in result.scores],
        "boxes": [{"class_id": cid, "box": box} for cid, box in boxes],
        "outputs": list(outputs),
        "timings": dict(timings),
    }


def error_record(item: InputItem, exc: BaseException) -> dict[str, Any]:
    """The results line of an image that failed."""
    return {"name": item.name, "input": str(item.path), "error": str(exc)}


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


class Journal:
    """The records of a run in ``outdir``: the journal appended during the run (a context
    manager: open while the run lasts), merged into ``results.jsonl`` by :meth:`merge`."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = Path(outdir)
        self.path = self.outdir / JOURNAL
        self._file: TextIO | None = None

    def recorded(self) -> set[str]:
        """Names with a success line in results.jsonl or in a killed run's journal."""
        done = set()
        for record in self._lines(self.outdir / RESULTS, self.path):
            if "error" not in record and "name" in record:
                done.add(record["name"])
        return done

    def clear(self) -> None:
        """Forget a killed run's journal (a new run, not a resumed one)."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Journal:
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def append(self, record: Mapping[str, Any]) -> None:
        """One line, flushed: it survives a kill right after."""
        if self._file is None:
            raise RuntimeError("the journal is not open: use it as a context manager")
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def merge(self, items: Sequence[InputItem], keep_results: bool) -> dict[str, dict[str, Any]]:
        """Write results.jsonl: the journal's lines (and, if ``keep_results``, the previous
        results.jsonl's), the newest line per image, in input order; remove the journal.
        Returns the first 8 records by name (the grid's titles)."""
        lines: dict[str, str] = {}
        sources = (self.outdir / RESULTS, self.path) if keep_results else (self.path,)
        for path in sources:
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    name = json.loads(line)["name"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a kill
                lines[name] = line
        order = {item.name: i for i, item in enumerate(items)}
        names = sorted(lines, key=lambda n: (order.get(n, len(order)), n))
        write_atomic(self.outdir / RESULTS, "".join(lines[n] + "\n" for n in names).encode())
        self.path.unlink(missing_ok=True)
        return {n: json.loads(lines[n]) for n in names[:8]}

    @staticmethod
    def _lines(*paths: Path) -> list[dict[str, Any]]:
        out = []
        for path in paths:
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append(record)
        return out


class Ledger:
    """Records each image's outcome once: its journal line, the summary's counts, an event."""

    def __init__(self, journal: Journal, summary: RunSummary, events: Events) -> None:
        self.journal = journal
        self.summary = summary
        self._events = events
        self._names: set[str] = set()

    def has(self, name: str) -> bool:
        """Whether ``name`` has its line already (an interrupt may come right after)."""
        return name in self._names

    def done(self, record: Mapping[str, Any]) -> None:
        self.journal.append(record)
        self._names.add(record["name"])
        summary = self.summary
        summary.done += 1
        for conversion in record["conversions"]:
            first = conversion not in summary.conversions
            summary.conversions[conversion] = summary.conversions.get(conversion, 0) + 1
            if first:
                self._events("conversion", {"kind": conversion, "name": record["name"]})
        self._events("done", {"record": record})

    def failed(self, item: InputItem, exc: BaseException) -> None:
        record = error_record(item, exc)
        self.summary.failed += 1
        self.journal.append(record)
        self._names.add(item.name)
        self._events("failed", {"record": record})

    def start(self, total: int, skipped: int) -> None:
        self.summary.total = total
        self.summary.skipped = skipped
        self._events("start", {"total": total, "skipped": skipped})
