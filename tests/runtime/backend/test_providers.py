"""Execution provider options (CUDA, TensorRT, OpenVINO, CUDA graphs) and shape profiles: pure logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cam_rt.runtime import (
    SessionConfig,
)
from cam_rt.runtime.backend.providers import CudaConfig, ShapeProfile, TensorRTConfig
from cam_rt.runtime.cli.app import get_app
from cam_rt.runtime.errors import ConfigError


def test_cuda_options_follow_bucketing() -> None:
    assert CudaConfig().ort_options(bucketed=False) == {
        "device_id": "0",
        "cudnn_conv_algo_search": "HEURISTIC",
        "cudnn_conv_use_max_workspace": "1",
        "arena_extend_strategy": "kSameAsRequested",
        "do_copy_in_default_stream": "1",
    }
    assert CudaConfig().ort_options(bucketed=True)["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    forced = CudaConfig(device_id=1, cudnn_search="default", gpu_mem_limit=2**30)
    options = forced.ort_options(bucketed=True)
    assert options["cudnn_conv_algo_search"] == "DEFAULT" and options["device_id"] == "1"
    assert options["gpu_mem_limit"] == str(2**30)
    with pytest.raises(ConfigError, match="cudnn search 'fast' is unknown"):
        CudaConfig(cudnn_search="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="device_id -1"):
        CudaConfig(device_id=-1)


def test_tensorrt_options(tmp_path: Path) -> None:
    profile = ShapeProfile((1, 32, 48), (2, 224, 224), (8, 640, 640))
    options = TensorRTConfig(fp16=True, cache_dir=tmp_path).ort_options("images", profile)
    assert options == {
        "device_id": "0",
        "trt_fp16_enable": "True",
        "trt_builder_optimization_level": "3",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tmp_path),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tmp_path),
        "trt_profile_min_shapes": "images:1x32x48x3",
        "trt_profile_opt_shapes": "images:2x224x224x3",
        "trt_profile_max_shapes": "images:8x640x640x3",
    }
    plain = TensorRTConfig().ort_options("x", None)
    assert plain["trt_fp16_enable"] == "False" and "trt_engine_cache_enable" not in plain
    with pytest.raises(ConfigError, match="optimization level 7"):
        TensorRTConfig(builder_optimization_level=7)


def test_shape_profile_checks_and_covers() -> None:
    with pytest.raises(ConfigError, match="does not hold"):
        ShapeProfile((1, 64, 64), (1, 32, 64), (1, 128, 128))
    p = ShapeProfile.covering([(2, 10, 30), (1, 40, 20), (2, 10, 30)])
    assert (p.min, p.opt, p.max) == ((1, 10, 20), (2, 10, 30), (2, 40, 30))
    assert p.contains(1, 10, 25) and not p.contains(3, 10, 25) and not p.contains(1, 41, 25)


def test_openvino_options() -> None:
    from cam_rt.runtime.backend.providers import OpenVINOConfig

    auto = OpenVINOConfig()
    # auto is decided by measurement in the session (backend.precision); undecided, it is fp32
    assert auto.resolved_precision() == "fp32" and auto.on_cpu
    assert OpenVINOConfig(precision="bf16").resolved_precision() == "bf16"  # forced
    assert auto.ort_options() == {"device_type": "CPU", "precision": "FP32"}
    bf16 = OpenVINOConfig(precision="bf16").ort_options()
    assert json.loads(bf16["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}
    assert bf16["precision"] == "ACCURACY"
    forced = OpenVINOConfig(
        precision="fp16", device_type="GPU", num_threads=2, cache_dir=Path("/tmp/ov")
    )
    assert forced.ort_options() == {
        "device_type": "GPU",
        "precision": "FP16",
        "cache_dir": "/tmp/ov",
        "num_of_threads": "2",
    }
    gpu = OpenVINOConfig(device_type="GPU")
    assert gpu.resolved_precision() == "fp32" and not gpu.on_cpu
    with pytest.raises(ConfigError, match="fp16 on GPU or NPU"):
        OpenVINOConfig(precision="fp16")
    with pytest.raises(ConfigError, match="bf16 is a CPU precision"):
        OpenVINOConfig(precision="bf16", device_type="NPU")
    with pytest.raises(ConfigError, match="precision 'int4' is unknown"):
        OpenVINOConfig(precision="int4")  # type: ignore[arg-type]


def test_cuda_graph_options() -> None:
    assert CudaConfig(cuda_graphs=True).ort_options(True)["enable_cuda_graph"] == "1"
    assert "enable_cuda_graph" not in CudaConfig().ort_options(True)
    with pytest.raises(ConfigError, match="size buckets"):
        SessionConfig(cuda=CudaConfig(cuda_graphs=True))
    SessionConfig(cuda=CudaConfig(cuda_graphs=True), bucketed=True)
    result = CliRunner().invoke(get_app(), ["bench", "m.onnx", "--cuda-graphs"])
    assert result.exit_code == 1 and "--bucket" in result.output
