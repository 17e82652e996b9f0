"""The `cam-rt` command: options, messages and exit codes (CliRunner and real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from cam_rt.runtime import __version__
from cam_rt.runtime.cli import get_app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(get_app(), ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"cam-rt {__version__}"


def test_export_is_registered_as_plugin() -> None:
    result = runner.invoke(get_app(), ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--feature-layer", "--score-layer", "--preprocess", "--fp16", "--opset"):
        assert option in result.output


def test_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(get_app(), ["export", "missing.keras", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "cam-rt: error: model 'missing.keras' does not exist: pass a .keras/.h5 file, a "
        "SavedModel folder or a built-in name (resnet38d)"
    ]
    assert "Traceback" not in result.output


def test_bad_option_values(tmp_path: Path) -> None:
    result = runner.invoke(
        get_app(), ["export", "x.keras", "-o", str(tmp_path / "m.onnx"), "--check-sizes", "97by131"]
    )
    assert result.exit_code == 1
    assert "check size '97by131' is not HEIGHTxWIDTH" in result.stderr
    result = runner.invoke(get_app(), ["export", "x.keras", "-o", "m.onnx", "--output", "maps"])
    assert result.exit_code == 1
    assert "output 'maps' is unknown" in result.stderr


@pytest.mark.skipif(
    not Path(sys.executable).with_name("cam-rt").exists(), reason="cam-rt script not installed"
)
def test_export_subprocess(tmp_path: Path, keras_file: Path) -> None:
    """The installed script, as a user runs it."""
    pytest.importorskip("tensorflow")
    script = Path(sys.executable).with_name("cam-rt")
    out = tmp_path / "cli.onnx"
    names = tmp_path / "names.txt"
    names.write_text("\n".join("abcde"))
    proc = subprocess.run(
        [
            str(script),
            "export",
            str(keras_file),
            "-o",
            str(out),
            "--classes",
            str(names),
            "--check-sizes",
            "97x131,64x64",
            "--output",
            "features",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "check features 1x97x131" in proc.stderr
    assert "check   scores 2x64x64" in proc.stderr
    assert proc.stdout.startswith(f"{out}: 5 classes, output 'features'")
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["cam_rt.classes"]) == list("abcde")
