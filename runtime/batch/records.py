"""The record step of a run: the ``results.jsonl`` line format, the ledger and the summary.

Each image gets one JSON line once all its files exist: a success record (:func:`success_record`:
name, input, size, conversions, classes, scores, boxes, outputs, timings) or an error record
(:func:`error_record`: name, input, error). The :class:`Ledger` records each image's outcome
once: its line in the run's :class:`~cam_rt.runtime.batch.journal.Journal`, the counts of the
:class:`RunSummary` and an event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..explain import CamResult
from .inputs import InputItem
from .journal import JOURNAL, RESULTS, Journal

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

#: ``events(kind, data)``: ``start`` {total, skipped}, ``done`` {record}, ``failed`` {record},
#: ``conversion`` {kind, name} (the first image that needed each conversion), ``warning``
#: {message} (e.g. damaged lines of a resumed run's records).
Events = Callable[[str, Mapping[str, Any]], None]


def success_record(
    item: InputItem,
    result: CamResult,
    conversions: Sequence[str],
    boxes: Sequence[tuple[int, list[int] | None]],
    outputs: Sequence[str],
    timings: Mapping[str, float],
    output_errors: Mapping[str, str] | None = None,
    class_names: Sequence[str] = (),
) -> dict[str, Any]:
    """The results line of an image written: ``boxes`` are (class id, largest box or None) per
    explained class, ``outputs`` the files written (relative to the output folder),
    ``output_errors`` the kinds that failed ({kind: message}, only when some did),
    ``class_names`` the model's (all L of them; without, ``top5`` names only the explained
    classes and gives the others' ids).

    ``classes`` holds the explained classes' score and probability and ``top5`` the 5 most
    probable classes; the full score vector of a model of any size stays out of the line (it
    is in ``NAME.maps.npz``)."""
    probs, scores = result.probabilities, result.scores
    names = dict(zip(result.class_ids, result.class_names, strict=True))
    top = [int(i) for i in np.argsort(-probs, kind="stable")[:5]]

    def name(i: int) -> str:
        return class_names[i] if i < len(class_names) else names.get(i, str(i))

    record: dict[str, Any] = {
        "name": item.name,
        "input": str(item.path),
        "size": list(result.size),
        "conversions": list(conversions),
        "classes": [
            {
                "id": cid,
                "name": n,
                "score": round(float(scores[cid]), 6),
                "probability": round(float(probs[cid]), 6),
            }
            for cid, n in names.items()
        ],
        "top5": [{"id": i, "name": name(i), "probability": round(float(probs[i]), 6)} for i in top],
        "boxes": [{"class_id": cid, "box": box} for cid, box in boxes],
        "outputs": list(outputs),
        "timings": dict(timings),
    }
    if output_errors:
        record["output_errors"] = dict(output_errors)
    return record


def error_record(item: InputItem, exc: BaseException) -> dict[str, Any]:
    """The results line of an image that failed."""
    message = " ".join(str(exc).splitlines()) or type(exc).__name__  # one line
    return {"name": item.name, "input": str(item.path), "error": message}


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
        self.journal.append(record)  # first: if it cannot be written, nothing is counted
        self.summary.failed += 1
        self._names.add(item.name)
        self._events("failed", {"record": record})

    def start(self, total: int, skipped: int) -> None:
        self.summary.total = total
        self.summary.skipped = skipped
        self._events("start", {"total": total, "skipped": skipped})
