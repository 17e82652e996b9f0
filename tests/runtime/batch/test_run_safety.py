"""Runs that lose nothing (issue #15): one writer per output folder, shards, damaged results,
full disks and a killed run's leftovers, with real processes, signals and file systems."""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cam_rt.runtime import CamSession, Explainer
from cam_rt.runtime.batch import render as render_module
from cam_rt.runtime.batch.inputs import discover_inputs
from cam_rt.runtime.batch.runner import RunConfig, Runner
from cam_rt.runtime.errors import ConfigError
from tests.onnx_models import channel_model
from tests.runtime.batch.runs import (
    RUN_FILES,
    cam_rt,
    lines,
    make_images,
    names,
    popen,
    recorded_with_files,
    snapshot,
)

JOURNAL, LOCK = RUN_FILES


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    return channel_model(path, channels=3, offset=0.4, class_names=("red", "green", "blue"))


def _wait_for_lines(proc: subprocess.Popen[str], journal: Path, count: int) -> None:
    """Until ``journal`` has ``count`` lines (the run is under way); fails if it ends first."""
    deadline = time.monotonic() + 120
    while not (journal.is_file() and journal.read_bytes().count(b"\n") >= count):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run wrote no lines"
        time.sleep(0.01)


def test_a_second_run_on_the_same_folder_fails_at_once(tmp_path: Path, model: Path) -> None:
    """The first run is stopped (SIGSTOP) while it holds the folder: the second fails with
    exit 1 and one line naming the first; the first, continued, completes every line."""
    make_images(tmp_path / "in", 40)
    out = tmp_path / "out"
    first = popen("run", model, tmp_path / "in", "-o", out, "--tta", "--batch-size", "1", "-q")
    try:
        _wait_for_lines(first, out / JOURNAL, 1)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = cam_rt("run", model, tmp_path / "in", "-o", out, "-q")
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert (second.returncode, second.stderr) == (
        1,
        f"cam-rt: error: {out} is being written by another cam-rt run (pid {first.pid}): "
        "wait for it, or give another -o\n",
    )
    assert names(out) == [f"img{i:03d}" for i in range(40)]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # lock and journal gone


def test_the_lock_is_held_for_the_whole_run(tmp_path: Path, model: Path) -> None:
    """A folder another process has locked (its pid in the lock file) is refused before any
    file is written."""
    make_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    with (out / LOCK).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        message = f"{out} is being written by another cam-rt run (pid 4242)"
        with pytest.raises(ConfigError, match=re.escape(message)):
            Runner(Explainer(CamSession(model)), out).run(discover_inputs([tmp_path / "in"]))
    assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing else touched


def test_shards_into_one_folder_give_every_line_once(tmp_path: Path, model: Path) -> None:
    make_images(tmp_path / "in", 12)
    full, out = tmp_path / "full", tmp_path / "out"
    assert cam_rt("run", model, tmp_path / "in", "-o", full, "-q").returncode == 0
    base = ["run", model, tmp_path / "in", "-o", out, "--skip-existing", "-q"]
    one = cam_rt(*base, "--shard", "1/2")
    assert one.returncode == 0, one.stderr
    first = names(out)
    assert 0 < len(first) < 12
    two = cam_rt(*base, "--shard", "2/2")
    assert two.returncode == 0 and two.stderr == ""  # nothing of shard 1 skipped or redone
    assert names(out) == names(full)  # each image once, in input order
    assert snapshot(out) == snapshot(full)
    bad = cam_rt(*base, "--shard", "3/2")
    assert bad.returncode == 1
    assert bad.stderr == (
        "cam-rt: error: --shard '3/2' is not I/N with 1 <= I <= N: e.g. --shard 1/4 "
        "(the first of 4 parts)\n"
    )


def test_shards_without_skip_existing_keep_the_other_shards_lines(
    tmp_path: Path, model: Path
) -> None:
    make_images(tmp_path / "in", 8)
    items = discover_inputs([tmp_path / "in"])
    explainer = Explainer(CamSession(model))
    done = [
        Runner(explainer, tmp_path / "out", RunConfig(shard=(i, 3))).run(items) for i in (1, 2, 3)
    ]
    assert sum(s.done for s in done) == 8 and sum(s.total for s in done) == 8
    assert names(tmp_path / "out") == [item.name for item in items]
    with pytest.raises(ConfigError, match=r"--shard 0/3 is not I/N"):
        RunConfig(shard=(0, 3))


def _damage(results: Path) -> None:
    """Hand-corrupt results.jsonl: garbage bytes, a non-JSON line, a line of the wrong shape,
    a line that is not an object, and the last line cut."""
    rows = results.read_bytes().splitlines(keepends=True)
    rows[1] = b"\x00\xff\xfe garbage \x9c\n"
    rows[3] = b"not json at all\n"
    record = json.loads(rows[5])
    del record["outputs"]
    rows[5] = (json.dumps(record) + "\n").encode()
    rows[7] = b'["img007"]\n'
    rows[-1] = rows[-1][: len(rows[-1]) // 2]
    results.write_bytes(b"".join(rows))


def test_resume_redoes_exactly_the_damaged_lines(tmp_path: Path, model: Path) -> None:
    make_images(tmp_path / "in", 10)
    full, out = tmp_path / "full", tmp_path / "out"
    assert cam_rt("run", model, tmp_path / "in", "-o", full, "-q").returncode == 0
    shutil.copytree(full, out)
    _damage(out / "results.jsonl")
    again = cam_rt("run", model, tmp_path / "in", "-o", out, "--skip-existing")
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"cam-rt: warning: ignored 5 damaged lines of {out / 'results.jsonl'} (cut, garbled or "
        "edited by hand): their images are done again"
    ]
    assert "skipping 5 images" in again.stderr and "5 written, 5 skipped" in again.stderr
    assert "Traceback" not in again.stderr
    assert snapshot(out) == snapshot(full)


def test_resume_after_a_kill_removes_its_temporaries(tmp_path: Path, model: Path) -> None:
    """SIGKILL a run, and a write of cam-rt's own mid-file: the resume removes the temporary
    files, cuts the journal's partial line and ends as an uninterrupted run."""
    make_images(tmp_path / "in", 60)
    full, out = tmp_path / "full", tmp_path / "out"
    args = ["run", model, tmp_path / "in", "--tta", "--batch-size", "1", "-q"]
    assert cam_rt(*args, "-o", full).returncode == 0
    proc = popen(*args, "-o", out)
    try:
        _wait_for_lines(proc, out / JOURNAL, 3)
    finally:
        proc.kill()
    proc.communicate(timeout=60)
    killed_write = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from cam_rt.runtime.batch.io import write_atomic\n"
        "def die(f):\n"
        "    f.write(b'half a file')\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_atomic(Path(sys.argv[1]), die)\n"
    )
    for target in ("img059.overlay.png", "img058.maps.npz"):
        subprocess.run([sys.executable, "-c", killed_write, str(out / target)], check=False)
    with (out / JOURNAL).open("ab") as journal:
        journal.write(b'{"name": "img057", "outp')  # killed mid-line
    outputs = set(snapshot(full)) | set(RUN_FILES)
    leftovers = [p for p in out.rglob("*") if p.relative_to(out).as_posix() not in outputs]
    assert len(leftovers) >= 2, leftovers
    again = cam_rt(*args, "-o", out, "--skip-existing")
    assert again.returncode == 0, again.stderr
    assert snapshot(out) == snapshot(full)  # no temporary, lock or journal left


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.ENOSPC, "no space left on {out}: free space and rerun with --skip-existing"),
        (
            errno.EIO,
            "cannot write {out}/img003.maps.npz (Input/output error): fix the folder and rerun "
            "with --skip-existing",
        ),
    ],
)
def test_a_write_error_ends_the_run_and_records_nothing_half_written(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch, code: int, message: str
) -> None:
    """The 8th file written fails (image 3's maps): the run ends with one error; images 0-2
    are recorded, image 3 (its overlay written) is not; the resume matches a full run."""
    make_images(tmp_path / "in", 8)
    items = discover_inputs([tmp_path / "in"])
    explainer = Explainer(CamSession(model))
    full, out = tmp_path / "full", tmp_path / "out"
    Runner(explainer, full).run(items)
    calls = itertools.count()
    write_atomic = render_module.write_atomic

    def failing(path: Path, data: bytes) -> None:
        if next(calls) == 7:
            raise OSError(code, os.strerror(code), str(path))
        write_atomic(path, data)

    monkeypatch.setattr(render_module, "write_atomic", failing)
    with pytest.raises(ConfigError) as info:
        Runner(explainer, out, RunConfig(write_workers=1)).run(items)
    assert str(info.value) == message.format(out=out)
    assert recorded_with_files(out) == ["img000", "img001", "img002"]
    assert (out / "img003.overlay.png").is_file() and not (out / "img003.maps.npz").exists()
    monkeypatch.undo()
    resumed = Runner(explainer, out, RunConfig(skip_existing=True)).run(items)
    assert (resumed.skipped, resumed.done, resumed.exit_code) == (3, 5, 0)
    assert snapshot(out) == snapshot(full)


def test_an_output_name_too_long_fails_that_image_only(tmp_path: Path, model: Path) -> None:
    make_images(tmp_path / "in", 2)
    (tmp_path / "in" / "img000.png").rename(tmp_path / "in" / ("x" * 245 + ".png"))
    summary = Runner(Explainer(CamSession(model)), tmp_path / "out").run(
        discover_inputs([tmp_path / "in"])
    )
    assert (summary.done, summary.failed) == (1, 1)
    failed = next(r for r in lines(tmp_path / "out") if "error" in r)
    assert "File name too long" in failed["error"]


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    """A 300 KiB tmpfs (needs root: skipped where mount fails)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)]
    if shutil.which("mount") is None or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_ends_the_run_cleanly(tmp_path: Path, model: Path, small_disk: Path) -> None:
    make_images(tmp_path / "in", 40)
    full, out = tmp_path / "full", small_disk / "out"
    assert cam_rt("run", model, tmp_path / "in", "-o", full, "-q").returncode == 0
    proc = cam_rt("run", model, tmp_path / "in", "-o", out, "-q")
    assert (proc.returncode, proc.stderr) == (
        1,
        f"cam-rt: error: no space left on {out}: free space and rerun with --skip-existing\n",
    )
    assert len(recorded_with_files(out)) < 40  # each recorded image has all its files
    remount = ["mount", "-o", "remount,size=20m", str(small_disk)]
    subprocess.run(remount, check=True)
    again = cam_rt("run", model, tmp_path / "in", "-o", out, "--skip-existing", "-q")
    assert again.returncode == 0, again.stderr
    assert snapshot(out) == snapshot(full)
