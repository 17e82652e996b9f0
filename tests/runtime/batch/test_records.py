"""The record step: the results.jsonl line format, the journal (resume, merge), the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cam_rt.runtime.batch.inputs import InputItem
from cam_rt.runtime.batch.records import (
    JOURNAL,
    RESULTS,
    Journal,
    Ledger,
    RunSummary,
    error_record,
    success_record,
)
from cam_rt.runtime.errors import InputError
from cam_rt.runtime.explain import CamResult


def _item(name: str) -> InputItem:
    return InputItem(Path("/data") / f"{name}.png", name)


def test_success_record_format() -> None:
    result = CamResult(
        scores=np.asarray([1.23456789, -2.0], np.float32),
        probabilities=np.asarray([0.7745998, 0.1192029], np.float32),
        class_ids=(0,),
        class_names=("cat",),
        maps=np.zeros((3, 5, 1), np.float32),
    )
    record = success_record(
        _item("a/x"),
        result,
        ("grayscale to RGB",),
        [(0, [1, 2, 3, 4])],
        ["a/x.overlay.png"],
        {"decode_s": 0.1, "explain_s": 0.2, "write_s": 0.3},
    )
    assert record == {
        "name": "a/x",
        "input": "/data/a/x.png",
        "size": [3, 5],
        "conversions": ["grayscale to RGB"],
        "classes": [{"id": 0, "name": "cat", "probability": 0.7746}],
        "scores": [1.234568, -2.0],
        "boxes": [{"class_id": 0, "box": [1, 2, 3, 4]}],
        "outputs": ["a/x.overlay.png"],
        "timings": {"decode_s": 0.1, "explain_s": 0.2, "write_s": 0.3},
    }
    assert json.loads(json.dumps(record)) == record
    assert error_record(_item("y"), InputError("bad")) == {
        "name": "y",
        "input": "/data/y.png",
        "error": "bad",
    }


def test_exit_codes() -> None:
    assert RunSummary().exit_code == 0
    assert RunSummary(failed=1).exit_code == 2
    assert RunSummary(failed=1, interrupted=True).exit_code == 130


def test_recorded_reads_successes_of_results_and_a_killed_journal(tmp_path: Path) -> None:
    (tmp_path / RESULTS).write_text(
        '{"name": "a", "outputs": []}\n{"name": "b", "error": "x"}\nnot json\n[1]\n'
    )
    (tmp_path / JOURNAL).write_text('{"name": "c", "outputs": []}\n{"name": "d", "outp')
    assert Journal(tmp_path).recorded() == {"a", "c"}
    assert Journal(tmp_path / "empty").recorded() == set()


def test_merge_keeps_the_newest_line_per_image_in_input_order(tmp_path: Path) -> None:
    items = [_item(n) for n in ("a", "b", "c")]
    (tmp_path / RESULTS).write_text('{"name": "c", "v": 1}\n{"name": "b", "error": "old"}\n')
    with Journal(tmp_path) as journal:
        journal.append({"name": "b", "v": 2})
        journal.append({"name": "a", "v": 3})
    with (tmp_path / JOURNAL).open("a") as cut:
        cut.write('{"name": "z", "v"')  # a line cut by a kill
    first = Journal(tmp_path).merge(items, keep_results=True)
    lines = [json.loads(line) for line in (tmp_path / RESULTS).read_text().splitlines()]
    assert lines == [{"name": "a", "v": 3}, {"name": "b", "v": 2}, {"name": "c", "v": 1}]
    assert first == {r["name"]: r for r in lines} and not (tmp_path / JOURNAL).exists()


def test_merge_of_a_new_run_drops_the_old_results(tmp_path: Path) -> None:
    (tmp_path / RESULTS).write_text('{"name": "old"}\n')
    with Journal(tmp_path) as journal:
        journal.append({"name": "new"})
    Journal(tmp_path).merge([_item("new")], keep_results=False)
    assert (tmp_path / RESULTS).read_text() == '{"name": "new"}\n'


def test_journal_lines_are_flushed_at_once(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.append({"name": "a"})
        assert (tmp_path / JOURNAL).read_text() == '{"name": "a"}\n'  # a kill now keeps it
    with pytest.raises(RuntimeError, match="not open"):
        journal.append({"name": "b"})
    journal.clear()
    assert not (tmp_path / JOURNAL).exists()


def test_ledger_counts_records_and_reports_events(tmp_path: Path) -> None:
    events: list[tuple[str, Any]] = []
    summary = RunSummary()
    with Journal(tmp_path) as journal:
        ledger = Ledger(journal, summary, lambda kind, data: events.append((kind, dict(data))))
        ledger.start(3, 1)
        one = {"name": "a", "conversions": ["16-bit to 8-bit"]}
        two = {"name": "b", "conversions": ["16-bit to 8-bit"]}
        ledger.done(one)
        ledger.done(two)
        ledger.failed(_item("c"), InputError("broken"))
    assert (summary.total, summary.skipped, summary.done, summary.failed) == (3, 1, 2, 1)
    assert summary.conversions == {"16-bit to 8-bit": 2}
    assert [kind for kind, _ in events] == ["start", "conversion", "done", "done", "failed"]
    assert events[1][1] == {"kind": "16-bit to 8-bit", "name": "a"}
    assert events[4][1]["record"] == {"name": "c", "input": "/data/c.png", "error": "broken"}
    assert ledger.has("a") and ledger.has("c") and not ledger.has("d")
    names = [json.loads(line)["name"] for line in (tmp_path / JOURNAL).read_text().splitlines()]
    assert names == ["a", "b", "c"]
