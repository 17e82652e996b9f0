"""`cam-rt warmup` and `cam-rt bench` (cli/bench.py) through the CLI on a tiny model. The
figures themselves are tested in tests/runtime/tools/test_bench.py."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cam_rt.runtime.cli import get_app
from tests.onnx_models import channel_model


def test_cli_warmup_runs_every_shape(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx")
    out = tmp_path / "warm.json"
    args = ["warmup", str(model), "--tta", "--scales", "1,2", "--bucket", "32"]
    args += ["--min-side", "64", "--max-side", "100", "--json", str(out), "-q"]
    result = CliRunner().invoke(get_app(), args)
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    # CPU: flips not batched; batch 8 of one size -> 8 inputs per run, or 1 for one image.
    assert {s["batch"] for s in payload["shapes"]} == {1, 8}
    assert f"warmed {len(payload['shapes'])} shapes" in result.stdout
    bad = CliRunner().invoke(get_app(), ["warmup", str(model), "--min-side", "64"])
    assert bad.exit_code == 1 and "needs --bucket" in bad.output


def test_cli_warmup_sizes_and_progress(tmp_path: Path) -> None:
    """Known shapes: no TTA, 20x30 images, batch sizes 1 and 3, flips batched as asked."""
    model = channel_model(tmp_path / "m.onnx")
    args = ["warmup", str(model), "--sizes", "20x30", "--batch-size", "3"]
    result = CliRunner().invoke(get_app(), args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("cam-rt warmup: 2 input shapes on CPUExecutionProvider")
    assert [line.split(":")[1].strip() for line in lines[1:]] == ["1x20x30", "3x20x30"]
    flips = ["--tta", "--scales", "1", "--batch-flips", "--batch-size", "1", "-q"]
    batched = CliRunner().invoke(get_app(), ["warmup", str(model), "--sizes", "20x30", *flips])
    assert batched.exit_code == 0, batched.output
    assert batched.stdout.startswith("warmed 1 shapes") and "slowest 2x20x30" in batched.stdout


def test_cli_bench_threads_and_table(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx")
    out = tmp_path / "bench.json"
    args = ["bench", str(model), "--sizes", "16", "--repeat", "2", "--warmup", "0"]
    result = CliRunner().invoke(get_app(), [*args, "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "model run" in result.stderr and "16x16" in result.stdout
    payload = json.loads(out.read_text())
    assert payload["mode"] == "model run" and payload["tta"] is None
    assert payload["batch"] == 1 and payload["repeat"] == 2 and len(payload["sizes"]) == 1
