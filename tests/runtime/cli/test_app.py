"""The `cam-rt` app (cli/app.py): the commands and their options, version, the one-line error
and warning display, the plug-ins (CliRunner and real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from cam_rt.runtime import __version__
from cam_rt.runtime.cli import get_app
from tests.onnx_models import channel_model

runner = CliRunner()
REQUIRED = ...

# Every command's options and defaults as they were before the CLI was split into modules.
TTA = {"--tta": False, "--scales": "0.5,1,1.5,2", "--flip": True, "--tta-mode": "mean"}
DEVICE = {
    "--device": "auto",
    "--gpu": 0,
    "--cudnn-search": "auto",
    "--trt-cache": None,
    "--fp16": False,
    "--bucket": 0,
    "--min-side": 32,
    "--max-side": 1024,
    "--batch-flips": None,
    "--precision": "auto",
    "--choice-cache": "use",
    "--cuda-graphs": False,
}
SURFACE: dict[str, dict[str, object]] = {
    "run": {
        "--outdir": REQUIRED,
        "--report": False,
        **TTA,
        "--classes": "predicted",
        "--threshold": 0.5,
        "--labels": None,
        **DEVICE,
        "--input-size": "auto",
        "--batch-size": 8,
        "--bg-threshold": 0.3,
        "--save": "overlay,maps",
        "--grid": None,
        "--skip-existing": False,
        "--shard": None,
        "--max-pixels": 100_000_000,
        "--quiet": False,
        "--engine": "local",
        "--ray-address": "",
        "--num-workers": 1,
        "--gpus-per-worker": 0.0,
    },
    "eval": {
        "--report": None,
        "--voc-root": None,
        "--split": "train",
        "--images": None,
        "--masks": None,
        "--labels": None,
        "--predicted-labels": False,
        "--thresholds": "0.10:0.40:0.01",
        **TTA,
        **DEVICE,
        "--input-size": "auto",
        "--batch-size": 8,
        "--json": None,
        "--quiet": False,
    },
    "bench": {
        "--sizes": "",
        "--batch": 1,
        "--repeat": 20,
        "--warmup": 2,
        **TTA,
        **DEVICE,
        "--threads": 0,
        "--input-size": "auto",
        "--json": None,
    },
    "warmup": {"--sizes": "", **TTA, "--batch-size": 8, **DEVICE, "--json": None, "--quiet": False},
    "quantize": {
        "--calibration": REQUIRED,
        "--output": REQUIRED,
        "--images": 32,
        "--tta": True,
        "--scales": "0.5,1,1.5,2",
        "--method": "minmax",
        "--head-float": True,
        "--floor": 0.99,
        "--force": False,
        "--json": None,
    },
    "triton": {
        "--output": REQUIRED,
        "--name": "",
        "--max-batch": 8,
        "--cpu": False,
        "--instances": 1,
        "--tensorrt": False,
        "--fp16": False,
        "--trt-cache": "",
        "--tta": True,
        "--scales": "0.5,1,1.5,2",
        "--bucket": 0,
        "--min-side": 32,
        "--max-side": 1024,
        "--warmup-sizes": "",
    },
    "serve": {
        **TTA,
        "--classes": "predicted",
        "--threshold": 0.5,
        **DEVICE,
        "--input-size": "auto",
        "--batch-size": 8,
        "--threads": 0,
        "--host": "127.0.0.1",
        "--port": 8000,
        "--name": "",
        "--max-batch": 8,
        "--max-wait-ms": 5.0,
        "--max-queue": 32,
        "--timeout-s": 30.0,
        "--max-body-mb": 32.0,
        "--max-pixels": 25_000_000,
        "--bg-threshold": 0.3,
    },
    "info": {"--json": False},
    "doctor": {},
}


def test_every_command_keeps_its_options_and_defaults() -> None:
    group = typer.main.get_command(get_app())
    assert isinstance(group, typer.core.TyperGroup)
    for name, expected in SURFACE.items():
        options = {
            max(p.opts, key=len): REQUIRED if p.required else p.default
            for p in group.commands[name].params
            if p.param_type_name == "option" and not getattr(p, "hidden", False)
        }
        options.pop("--help", None)
        assert options == expected, name
    run = group.commands["run"].params
    assert [p.default for p in run if p.name == "alpha"] == ["error"]  # hidden, still there


def test_help_lists_choices_and_defaults() -> None:
    result = runner.invoke(get_app(), ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<mean|keras-explainable|occse>" in result.output
    assert "<auto|heuristic|exhaustive|default>" in result.output
    assert "[default: 0.5,1,1.5,2]" in result.output and "[default: 1024]" in result.output
    assert "--alpha" not in result.output and "--threads" not in result.output


def test_version() -> None:
    result = runner.invoke(get_app(), ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"cam-rt {__version__}"


def test_module_entry_point_and_main() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout == f"cam-rt {__version__}\n"
    proc = subprocess.run(
        [sys.executable, "-c", "from cam_rt.runtime.cli import main; main(['doctor', '--help'])"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "Check the environment" in proc.stdout


def test_warnings_are_one_line(tmp_path: Path) -> None:
    """A Python warning (here: CUDA asked for, not installed) is one `cam-rt: warning:` line."""
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is available: no fallback warning")
    model = channel_model(tmp_path / "m.onnx")
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / "x.png")
    code = "from cam_rt.runtime.cli import main; main()"
    args = ["run", str(model), str(tmp_path / "in"), "-o", str(tmp_path / "o"), "-q"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--device", "cuda"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "cam-rt: warning: execution provider 'cuda' (CUDAExecutionProvider) is not available in "
        f"this onnxruntime (it offers {', '.join(onnxruntime.get_available_providers())}); "
        "using CPU instead"
    ]


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


USAGE = [
    (["run"], "Missing argument 'model'", "cam-rt run"),
    (["run", "m.onnx", "x", "--bogus"], "No such option: --bogus", "cam-rt run"),
    (["run", "m.onnx", "x", "-o", "o", "--batch-size", "many"], "'--batch-size'", "cam-rt run"),
    (["bench", "m.onnx", "--repeat"], "Option '--repeat' requires an argument", "cam-rt bench"),
    (["nosuch"], "No such command 'nosuch'", "cam-rt"),
]


@pytest.mark.parametrize(("args", "text", "command"), USAGE)
def test_usage_errors_are_one_line_exit_one(args: list[str], text: str, command: str) -> None:
    """Exit code 2 means "some inputs failed" (run, eval): a usage error is 1, one line."""
    result = runner.invoke(get_app(), args)
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("cam-rt: error: ") and text in line, line
    assert line.endswith(f"; see '{command} --help'"), line
    assert result.stdout == ""


def test_usage_error_through_the_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli", "eval", "m.onnx", "--split"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        "cam-rt: error: Option '--split' requires an argument; see 'cam-rt eval --help'\n"
    )


def test_no_command_prints_the_help_and_exits_one() -> None:
    """Bare `cam-rt` is a usage error (click's own classification): the help, exit code 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli"], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "Usage: cam-rt [OPTIONS] COMMAND [ARGS]..." in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for help_args in (["--help"], ["run", "--help"]):  # asked for: exit code 0
        assert runner.invoke(get_app(), help_args).exit_code == 0
