"""SIGINT and SIGTERM at any moment of `cam-rt` (cli/entry.py): exit code 130, one line, no
traceback; during start-up (importing the app, opening the model) as well as during a run.

Real processes, real signals, sent at known stages read from /proc/PID: once the process
catches SIGTERM (``SigCgt`` of /proc/PID/status: the first thing ``main()`` does, before the app
is imported), plus a delay; or once ONNX Runtime's library is mapped (/proc/PID/maps: the
model is being opened). What comes before ``main()`` (the interpreter's start and
``import cam_rt.runtime``, the parent package) runs no code of the CLI.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.onnx_models import channel_model

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads /proc/PID/status (Linux)"
)

DELAYS = (0.0, 0.05, 0.2, 0.5, 1.0)


@pytest.fixture(scope="module")
def run_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """`cam-rt run` over 40 images: seconds of work, so each signal lands before the end."""
    root = tmp_path_factory.mktemp("signals")
    model = channel_model(root / "m.onnx", channels=3)
    (root / "in").mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        pixels = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "in" / f"{i:02d}.png")
    return ["run", str(model), str(root / "in"), "-q", "-o"]


def _caught(pid: int) -> set[int]:
    """The signals process ``pid`` has handlers for (SigCgt of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask >> (n - 1) & 1}
    return set()


def _handlers_installed(pid: int) -> bool:
    return signal.SIGTERM in _caught(pid)


def _onnxruntime_loaded(pid: int) -> bool:
    return "onnxruntime_pybind11_state" in Path(f"/proc/{pid}/maps").read_text()


def _interrupt(
    args: list[str], sig: signal.Signals, delay: float, stage: Callable[[int], bool]
) -> tuple[int, str]:
    """Start cam-rt, wait until ``stage(pid)`` holds, wait ``delay``, send ``sig``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cam_rt.runtime.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not stage(proc.pid):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"{stage.__name__} never held"
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stderr


@pytest.mark.parametrize("delay", DELAYS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_interrupted_at_start_up_exits_130(
    tmp_path: Path, run_args: list[str], sig: signal.Signals, delay: float
) -> None:
    args = [*run_args, str(tmp_path / "out")]
    _check_interrupted(*_interrupt(args, sig, delay, _handlers_installed))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_interrupted_while_opening_the_model_exits_130(
    tmp_path: Path, run_args: list[str], sig: signal.Signals
) -> None:
    """Before the fix: SIGTERM killed the process (-15), SIGINT exited 130 without a word."""
    args = [*run_args, str(tmp_path / "out")]
    code, stderr = _interrupt(args, sig, 0.0, _onnxruntime_loaded)
    _check_interrupted(code, stderr)


def _check_interrupted(code: int, stderr: str) -> None:
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    lines = stderr.splitlines()
    assert lines and all(line.startswith("cam-rt: ") for line in lines), stderr
    assert lines[-1].startswith("cam-rt: interrupted"), stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_other_commands_say_interrupted(tmp_path: Path, sig: signal.Signals) -> None:
    """`cam-rt bench` (no signal handling of its own): the same one line and exit code 130."""
    model = channel_model(tmp_path / "m.onnx")
    args = ["bench", str(model), "--sizes", "256", "--repeat", "1000000", "--warmup", "0"]
    code, stderr = _interrupt(args, sig, 1.0, _onnxruntime_loaded)
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.splitlines()[-1:] == ["cam-rt: interrupted"], stderr
