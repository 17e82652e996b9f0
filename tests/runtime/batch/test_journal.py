"""The journal: resume (damaged lines ignored), merge in input order, whole lines, syncs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cam_rt.runtime.batch.inputs import InputItem
from cam_rt.runtime.batch.journal import JOURNAL, RESULTS, Journal
from cam_rt.runtime.errors import ConfigError


def _item(name: str) -> InputItem:
    return InputItem(Path("/data") / f"{name}.png", name)


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
