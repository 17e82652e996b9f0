"""The progress display (cli/progress.py) off a terminal: plain lines on stderr."""

from __future__ import annotations

import re

import pytest

from cam_rt.runtime.cli.progress import Progress


def _feed(progress: Progress) -> None:
    with progress:
        progress.event("start", {"total": 4, "skipped": 1})
        progress.event("conversion", {"kind": "grayscale", "name": "g"})
        progress.event("done", {"record": {"name": "a"}})
        progress.event("failed", {"record": {"name": "b", "error": "is empty (0 bytes)"}})
        progress.event("done", {"record": {"name": "c"}})


def test_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    _feed(Progress(quiet=False, every=0.0))
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == [
        "cam-rt: skipping 1 images whose outputs exist",
        "cam-rt: note: converting grayscale images (first: g)",
    ]
    assert lines[3] == "cam-rt: failed: b: is empty (0 bytes)"
    counts = [re.fullmatch(r"cam-rt: (\d)/3 images, [\d.]+ img/s, ETA \d+ s", x) for x in lines]
    assert [int(m.group(1)) for m in counts if m] == [1, 2, 3]
    assert len(lines) == 6


def test_slow_updates_only_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    _feed(Progress(quiet=False, every=3600.0))
    lines = capsys.readouterr().err.splitlines()
    assert [x for x in lines if "/3 images" in x] == [lines[-1]]
    assert lines[-1].startswith("cam-rt: 3/3 images")


def test_quiet_keeps_failures_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    _feed(Progress(quiet=True, every=0.0))
    assert capsys.readouterr().err.splitlines() == [
        "cam-rt: skipping 1 images whose outputs exist",
        "cam-rt: note: converting grayscale images (first: g)",
        "cam-rt: failed: b: is empty (0 bytes)",
    ]


def test_only_images_count(capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings are printed, events of other kinds are not images: 2 of 2, not 4 of 2."""
    with Progress(quiet=False, every=0.0) as progress:
        progress.event("start", {"total": 2, "skipped": 0})
        progress.event("warning", {"message": "line 3 of the journal is damaged"})
        progress.event("done", {"record": {"name": "a"}})
        progress.event("checkpoint", {"written": 1})
        progress.event("done", {"record": {"name": "b"}})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "cam-rt: warning: line 3 of the journal is damaged"
    assert [x.split(",")[0] for x in lines[1:]] == ["cam-rt: 1/2 images", "cam-rt: 2/2 images"]
