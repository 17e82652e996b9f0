"""Smoke runs of the benchmark scripts on a tiny model, and their statistics helper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .onnx_models import channel_model

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
from common import summarize  # noqa: E402


def test_summarize() -> None:
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.n, s.median, s.q1, s.q3, s.minimum, s.maximum) == (5, 3.0, 2.0, 4.0, 1.0, 5.0)
    assert s.iqr == 2.0
    assert summarize([7.0]).iqr == 0.0
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize(
    ("script", "args", "result"),
    [
        ("cli_throughput.py", ["--images", "3", "--tta", "--name", "smoke_cli"], "smoke_cli"),
        (
            "runtime_stages.py",
            ["--size", "40", "--repeat", "2", "--name", "smoke_stages"],
            "smoke_stages",
        ),
    ],
)
def test_scripts_run(tmp_path: Path, script: str, args: list[str], result: str) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3)
    env = {**os.environ, "CAM_RT_BENCH_RESULTS": str(tmp_path / "results")}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--model", str(model), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("config:")
    payload = json.loads((tmp_path / "results" / f"{result}.json").read_text())
    assert payload["machine"]["cores"] and (tmp_path / "results" / f"{result}.md").is_file()
