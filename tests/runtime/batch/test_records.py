"""The record step: the results.jsonl line format, the journal (resume, merge), the ledger."""

from __future__ import annotations

import json
import os
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
from cam_rt.runtime.errors import ConfigError, InputError
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
        "classes": [{"id": 0, "name": "cat", "score": 1.234568, "probability": 0.7746}],
        "top5": [
            {"id": 0, "name": "cat", "probability": 0.7746},
            {"id": 1, "name": "1", "probability": 0.119203},
        ],
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


def test_damaged_lines_are_ignored_with_one_warning(tmp_path: Path) -> None:
    """Cut, garbled, non-JSON and wrong-shaped lines (a killed run, a bad disk, a hand edit)
    do not count as done, whatever bytes they hold; one warning says how many."""
    good = {"name": "a", "input": "/data/a.png", "outputs": ["a.overlay.png"]}
    (tmp_path / RESULTS).write_bytes(
        json.dumps(good).encode()
        + b"\n\xff\xfe\x00\x9c garbage\n"  # not UTF-8
        + b"not json\n"
        + b'{"name": "b"}\n'  # neither outputs nor error
        + b'{"name": 7, "outputs": []}\n'
        + b'{"name": "f", "outputs": "f.png"}\n'
        + b"[1, 2]\n"
        + b'{"name": "e", "input": "/data/e.png", "error": "bad"}\n'  # failed: redone, not damaged
    )
    (tmp_path / JOURNAL).write_bytes(b'{"name": "c", "outputs": []}\n{"name": "d", "outputs": []}')
    warnings: list[str] = []
    assert Journal(tmp_path).recorded(warnings.append) == {"a", "c"}
    (warning,) = warnings
    assert warning.startswith("ignored 7 damaged lines of ") and "done again" in warning
    assert str(tmp_path / RESULTS) in warning and str(tmp_path / JOURNAL) in warning
    (tmp_path / JOURNAL).unlink()
    (tmp_path / RESULTS).write_text(json.dumps(good) + "\n")
    assert Journal(tmp_path).recorded(warnings.append) == {"a"} and len(warnings) == 1


def test_merge_skips_damaged_lines_and_keeps_the_others(tmp_path: Path) -> None:
    items = [_item(n) for n in ("a", "b")]
    (tmp_path / RESULTS).write_bytes(b'{"name": "a", "v": 1}\n\xff\xfe garbage\n')
    (tmp_path / JOURNAL).write_bytes(b'{"name": "b", "v": 2}\n{"name": "a", "v"')
    Journal(tmp_path).merge(items, keep_results=True)
    assert (tmp_path / RESULTS).read_text() == '{"name": "a", "v": 1}\n{"name": "b", "v": 2}\n'


def test_no_line_is_appended_after_a_partial_line(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_bytes(b'{"name": "a"}\n{"name": "b", "ou')  # killed mid-line
    with Journal(tmp_path) as journal:
        journal.append({"name": "c"})
    assert (tmp_path / JOURNAL).read_bytes() == b'{"name": "a"}\n{"name": "c"}\n'
    (tmp_path / JOURNAL).write_bytes(b'{"na')
    with Journal(tmp_path) as journal:
        journal.append({"name": "d"})
    assert (tmp_path / JOURNAL).read_bytes() == b'{"name": "d"}\n'


def test_journal_syncs_at_checkpoints_and_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    with Journal(tmp_path, sync_lines=64, sync_seconds=float("inf")) as journal:
        for i in range(130):
            journal.append({"name": f"x{i}"})
        assert len(synced) == 2  # after lines 64 and 128
    assert len(synced) == 3  # and when closed
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 130


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_while_recording_is_a_run_error(tmp_path: Path) -> None:
    """/dev/full answers every write with ENOSPC: the journal says so in one line."""
    (tmp_path / JOURNAL).symlink_to("/dev/full")
    with pytest.raises(ConfigError) as info, Journal(tmp_path) as journal:
        journal.append({"name": "a"})
    assert str(info.value) == (
        f"no space left on {tmp_path}: free space and rerun with --skip-existing"
    )


def test_many_classes_keep_the_explained_and_the_top5_only() -> None:
    scores = np.linspace(-5.0, 5.0, 1000).astype(np.float32)
    probs = (1 / (1 + np.exp(-scores))).astype(np.float32)
    result = CamResult(scores, probs, (10, 999), ("c10", "c999"), np.zeros((2, 2, 2), np.float32))
    record = success_record(_item("m"), result, (), [(10, None), (999, None)], ["m.maps.npz"], {})
    assert "scores" not in record
    assert record["classes"] == [
        {
            "id": 10,
            "name": "c10",
            "score": round(float(scores[10]), 6),
            "probability": round(float(probs[10]), 6),
        },
        {"id": 999, "name": "c999", "score": 5.0, "probability": round(float(probs[999]), 6)},
    ]
    assert [t["id"] for t in record["top5"]] == [999, 998, 997, 996, 995]
    assert record["top5"][0] == {
        "id": 999,
        "name": "c999",
        "probability": round(float(probs[999]), 6),
    }
    assert record["top5"][1]["name"] == "998"  # not explained: no name known here but its id
    assert len(json.dumps(record)) < 1000


def test_output_errors_are_kept_in_the_line() -> None:
    result = CamResult(
        np.zeros(2, np.float32), np.zeros(2, np.float32), (), (), np.zeros((2, 2, 0), np.float32)
    )
    record = success_record(
        _item("e"), result, (), [], ["e.maps.npz"], {}, output_errors={"seeds": "bad"}
    )
    assert record["output_errors"] == {"seeds": "bad"}
    assert "output_errors" not in success_record(_item("e"), result, (), [], [], {})
