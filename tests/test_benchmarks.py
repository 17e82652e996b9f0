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
    assert (s.n, s.p50, s.q1, s.q3, s.minimum, s.maximum) == (5, 3.0, 2.0, 4.0, 1.0, 5.0)
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
    if result == "smoke_stages":  # from file to encoded outputs
        assert {"decode", "onnxruntime", "tta_resize", "colour", "encode"} <= set(
            payload["stages"][0]
        )


def test_e2e_quick(tmp_path: Path) -> None:
    """cam-rt vs the TensorFlow way on the demo model: both sides run, maps agree, files written."""
    env = {
        **os.environ,
        "CAM_RT_BENCH_RESULTS": str(tmp_path / "results"),
        "CAM_RT_BENCH_CACHE": str(tmp_path / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, str(BENCH / "e2e.py"), "--quick", "--name", "smoke_e2e"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("config:")
    payload = json.loads((tmp_path / "results" / "smoke_e2e.json").read_text())
    rows = {r["workload"]: r for r in payload["rows"]}
    assert set(rows) == {"demo-folder", "demo-folder-tta"}
    for row in rows.values():
        assert row["max_abs_map_diff"] < 1e-4  # the same maps on both sides
        assert row["cam_rt"]["n"] == row["tf"]["n"] == 3
        assert row["gflop_per_image"] > 0 and row["cam_rt_rss_mib"] > 0
    # TTA runs 10 passes of the same image sizes: more FLOPs than one pass.
    assert rows["demo-folder-tta"]["gflop_per_image"] > 5 * rows["demo-folder"]["gflop_per_image"]
    assert payload["cold"][0]["model"] == "demo" and payload["cold"][0]["tf_s"]["n"] == 1
    assert (tmp_path / "results" / "smoke_e2e.png").stat().st_size > 1000
