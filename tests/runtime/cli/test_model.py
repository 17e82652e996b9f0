"""`cam-rt info`, `doctor`, `quantize` and `triton` (cli/model.py) through the CLI. What
quantize and triton write is tested in tests/runtime/tools/."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from cam_rt.runtime.cli import get_app
from tests.onnx_models import channel_model

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    return channel_model(path, channels=3, offset=0.4, class_names=("red", "green", "blue"))


def test_info_and_doctor(model: Path) -> None:
    result = runner.invoke(get_app(), ["info", str(model), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["classes"] == ["red", "green", "blue"]
    assert info["inputs"][0]["shape"] == ["batch", "height", "width", 3]
    assert "CPUExecutionProvider" in info["providers_available"]
    text = runner.invoke(get_app(), ["info", str(model)])
    assert "classes            3: red, green, blue" in text.stdout
    doctor = runner.invoke(get_app(), ["doctor"])
    assert doctor.exit_code == 0
    assert "onnxruntime" in doctor.stdout and "providers" in doctor.stdout


def test_info_shows_input_size_and_method(tmp_path: Path, model: Path) -> None:
    fixed = channel_model(
        tmp_path / "f.onnx", input_size=(8, 8), fixed_size=True, method="grad-cam"
    )
    trained = channel_model(tmp_path / "t.onnx", input_size=(224, 320))
    lines = {
        path: runner.invoke(get_app(), ["info", str(path)]).stdout.splitlines()
        for path in (fixed, trained, model)
    }
    assert {"input_size         8x8, fixed", "method             grad-cam"} <= set(lines[fixed])
    assert "input_size         224x320 (trained), dynamic" in lines[trained]
    assert {"input_size         any, dynamic", "method             cam"} <= set(lines[model])


def test_triton_defaults_are_the_configs(tmp_path: Path, model: Path) -> None:
    """No options: TritonConfig's defaults (GPU, max batch 8, TTA at 0.5,1,1.5,2)."""
    result = runner.invoke(get_app(), ["triton", str(model), "-o", str(tmp_path / "repo")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {tmp_path / 'repo' / 'm'} (max batch 8, gpu)"
    client = (tmp_path / "repo" / "m_client.py").read_text()
    assert "tta=TTAConfig((0.5, 1.0, 1.5, 2.0), flip=True, mode='mean')," in client
    small = ["triton", str(model), "-o", str(tmp_path / "r2"), "--cpu", "--no-tta"]
    result = runner.invoke(get_app(), [*small, "--max-batch", "2", "--name", "x"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {tmp_path / 'r2' / 'x'} (max batch 2, cpu)"
    assert "    tta=None,\n" in (tmp_path / "r2" / "x_client.py").read_text()
    bad = runner.invoke(get_app(), [*small, "--min-side", "64", "--max-side", "32"])
    assert bad.exit_code == 1
    assert bad.stderr == "cam-rt: error: --min-side 64 is above --max-side 32\n"


def test_quantize_refusals(tmp_path: Path, model: Path) -> None:
    args = ["quantize", str(model), "-o", str(tmp_path / "q.onnx")]
    result = runner.invoke(get_app(), [*args, "--calibration", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"cam-rt: error: --calibration {tmp_path / 'none'} is not a folder of images\n"
    )
    method = runner.invoke(get_app(), [*args, "--calibration", str(tmp_path), "--method", "mse"])
    assert method.exit_code == 1
    assert "calibration method 'mse' is unknown" in method.stderr


def test_info_on_malformed_class_names_is_one_line(tmp_path: Path) -> None:
    """Class names of numbers used to give a traceback in `cam-rt info` (and odd file names in
    `cam-rt run`); now the file is refused when it is read, exit code 1."""
    path = channel_model(tmp_path / "bad.onnx", channels=3)
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == "cam_rt.classes":
            prop.value = "[1, 2, 3]"
    onnx.save(proto, str(path))
    for command in ("info", "warmup"):
        result = runner.invoke(get_app(), [command, str(path)])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            f"cam-rt: error: {path} has broken cam-rt metadata: cam_rt.classes '[1, 2, 3]' is "
            'not a JSON list of class names (strings, e.g. ["cat", "dog"]): export the model '
            "again with 'cam-rt export'\n"
        )
