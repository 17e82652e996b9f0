"""The option groups (cli/options.py): their defaults are the configs', they build the configs
the commands run with, and a bad value is a one-line error with exit code 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cam_rt.runtime import (
    ClassSelection,
    CudaConfig,
    ExplainConfig,
    InputSize,
    OpenVINOConfig,
    SessionConfig,
    TensorRTConfig,
    TTAConfig,
    shape_profile,
)
from cam_rt.runtime.cli import get_app
from cam_rt.runtime.cli.options import (
    DeviceOptions,
    ExplainOptions,
    parse_scales,
    scales_text,
    split,
)
from cam_rt.runtime.errors import ConfigError
from tests.onnx_models import channel_model

TTA = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "mean")


def test_defaults_are_the_configs() -> None:
    assert ExplainOptions().scales == "0.5,1,1.5,2" == scales_text(TTAConfig().scales)
    assert ExplainOptions().config() == ExplainConfig()
    assert ExplainOptions(tta=True).tta_config() == TTAConfig()
    explain = ExplainConfig()
    config = DeviceOptions().session_config(explain)
    assert config == SessionConfig(trt_profile=shape_profile(explain, 32, 1024))
    assert config.cuda == CudaConfig() and config.tensorrt == TensorRTConfig()
    assert config.openvino == OpenVINOConfig()


def test_explain_options_build_the_config() -> None:
    options = ExplainOptions(
        tta=True,
        scales=" 1, 2,",
        flip=False,
        tta_mode="occse",
        classes="top-2",
        threshold=0.3,
        batch_size=4,
        bucket=32,
        batch_flips=True,
        input_size="320x480",
        alpha="drop",
    )
    assert options.config() == ExplainConfig(
        tta=TTAConfig((1.0, 2.0), False, "occse"),
        classes=ClassSelection("top-k", k=2, threshold=0.3),
        batch_size=4,
        alpha="drop",
        batch_flips=True,
        bucket=32,
        input_size=InputSize("size", size=(320, 480)),
    )
    assert ExplainOptions(scales="1", tta_mode="occse").tta_config() is None  # TTA off


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tta": True, "scales": "0.5,x"}, "--scales '0.5,x' is not a list of numbers: e.g. 0.5,1"),
        ({"tta": True, "scales": "0,1"}, "scale 0.0 is invalid"),
        ({"tta": True, "tta_mode": "best"}, "TTA mode 'best' is unknown"),
        ({"scales": "0.5,x"}, "--scales '0.5,x' is not a list of numbers"),  # without --tta too
        ({"scales": ""}, "scales is empty"),
        ({"tta": False, "tta_mode": "best"}, "TTA mode 'best' is unknown"),
        ({"classes": ""}, "--classes '' is empty"),
        ({"batch_size": 0}, "batch_size 0 must be >= 1"),
        ({"bucket": -1}, "bucket -1 must be an integer >= 0"),
        ({"input_size": "big"}, "--input-size 'big' is not model, image, HxW or N"),
        ({"alpha": "keep"}, "alpha 'keep' is unknown"),
    ],
)
def test_bad_explain_options_fail_when_built(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExplainOptions(**fields)


def test_device_options_plan_the_profile(tmp_path: Path) -> None:
    explain = ExplainConfig(tta=TTA, batch_size=2, bucket=16)
    options = DeviceOptions(
        device="tensorrt,cuda", gpu=1, trt_cache=tmp_path, fp16=True, min_side=32, max_side=256
    )
    config = options.session_config(explain)
    assert config.providers == ("tensorrt", "cuda") and config.bucketed
    assert config.options_for("CUDAExecutionProvider")["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    trt = config.options_for("TensorrtExecutionProvider")
    assert trt["trt_fp16_enable"] == "True" and trt["device_id"] == "1"
    assert trt["trt_profile_max_shapes"] == "images:2x512x512x3"
    assert trt["trt_engine_cache_path"] == str(tmp_path)
    fastest: Any = "fastest"
    with pytest.raises(ConfigError, match="--cudnn-search 'fastest'"):
        DeviceOptions(device="cuda", cudnn_search=fastest)


def test_device_options_map_onto_the_session_config() -> None:
    options = DeviceOptions(
        cudnn_search="default", threads=3, precision="fp32", cuda_graphs=True, gpu=2
    )
    config = options.session_config(ExplainConfig(bucket=32))
    assert config.intra_op_threads == 3 and config.providers == ("auto",)
    assert config.cuda == CudaConfig(device_id=2, cudnn_search="default", cuda_graphs=True)
    assert config.openvino == OpenVINOConfig(precision="fp32")
    with pytest.raises(ConfigError, match="image sides 64..32 are not a range"):
        DeviceOptions(min_side=64, max_side=32).session_config(ExplainConfig())


def test_parsers() -> None:
    assert split(" a, ,b ,") == ["a", "b"]
    assert parse_scales("1, 0.5") == (1.0, 0.5)
    assert scales_text((1.0, 0.75, 2.0)) == "1,0.75,2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cudnn-search", "fastest"],
            "--cudnn-search 'fastest' is unknown: use auto, heuristic, exhaustive or default",
        ),
        (["--precision", "fp64"], "OpenVINO precision 'fp64' is unknown"),
        (["--tta", "--tta-mode", "best"], "TTA mode 'best' is unknown"),
        (["--tta", "--scales", "1,a"], "--scales '1,a' is not a list of numbers"),
        (["--scales", "1,a"], "--scales '1,a' is not a list of numbers"),
        (["--no-tta", "--tta-mode", "best"], "TTA mode 'best' is unknown"),
        (["--batch-size", "0"], "batch_size 0 must be >= 1"),
    ],
)
def test_bad_value_is_one_line_and_exit_one(tmp_path: Path, args: list[str], message: str) -> None:
    """Through the CLI, before the model is opened (the file does not exist)."""
    result = CliRunner().invoke(get_app(), ["warmup", str(tmp_path / "none.onnx"), *args])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("cam-rt: error: ") and message in line
    assert "Traceback" not in result.output


def test_choices_pass_through_to_the_config(tmp_path: Path) -> None:
    """A valid choice reaches the session: --cudnn-search and --precision on a real model."""
    model = channel_model(tmp_path / "m.onnx")
    args = ["warmup", str(model), "--sizes", "8", "-q", "--cudnn-search", "exhaustive"]
    result = CliRunner().invoke(get_app(), [*args, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "warmed 2 shapes" in result.stdout


@pytest.mark.parametrize(
    ("args", "warning"),
    [
        (["--scales", "1"], "--scales has no effect without --tta"),
        (["--no-tta", "--no-flip", "--tta-mode", "occse"], "--no-flip, --tta-mode have no effect"),
        (["--batch-flips"], "--batch-flips has no effect without --tta"),
        (["--tta", "--scales", "1", "--no-flip"], None),
        (["--scales", "0.5,1,1.5,2"], "--scales has no effect without --tta"),  # given: said
        ([], None),
    ],
)
def test_tta_options_without_tta_warn(tmp_path: Path, args: list[str], warning: str | None) -> None:
    """A TTA option given without --tta does nothing: one warning line says so (the run goes
    on); bad values of those options are errors with or without --tta (above)."""
    model = channel_model(tmp_path / "m.onnx")
    result = CliRunner().invoke(get_app(), ["warmup", str(model), "--sizes", "8", "-q", *args])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    if warning is None:
        assert warnings == []
    else:
        (line,) = warnings
        assert line.startswith(f"cam-rt: warning: {warning}"), line
        assert line.endswith("no effect without --tta"), line


def test_tta_warning_where_tta_is_on_by_default(tmp_path: Path) -> None:
    """`cam-rt triton` plans TTA by default: --no-tta with --scales warns too."""
    model = channel_model(tmp_path / "m.onnx")
    args = ["triton", str(model), "-o", str(tmp_path / "repo"), "--no-tta", "--scales", "1"]
    result = CliRunner().invoke(get_app(), args)
    assert result.exit_code == 0, result.output
    assert result.stderr == "cam-rt: warning: --scales has no effect without --tta\n"
