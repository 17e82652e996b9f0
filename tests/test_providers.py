"""GPU deployment logic, tested on CPU: provider options, TensorRT profiles from TTA plans,
size buckets, warm-up shapes, IO binding, flip batching."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ExplainConfig,
    Explainer,
    SessionConfig,
    TTAConfig,
)
from cam_rt.runtime.bench import warmup_shapes
from cam_rt.runtime.cli import _session_config, get_app
from cam_rt.runtime.errors import ConfigError, InputError
from cam_rt.runtime.explain import batch_shapes, shape_profile
from cam_rt.runtime.providers import CudaConfig, ShapeProfile, TensorRTConfig
from cam_rt.runtime.session import ProviderFallbackWarning
from cam_rt.runtime.tta import bucket_size, input_size

from .onnx_models import channel_model

TTA = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "mean")


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


def test_bucket_arithmetic() -> None:
    assert bucket_size(100, 47, 32) == (96, 32)  # nearest multiple; 47 -> 32 (1.47 buckets)
    assert bucket_size(112, 10, 32) == (128, 32)  # halves round up; never below one bucket
    assert bucket_size(100, 47, 0) == (100, 47)
    assert input_size(97, 131, 1.5, "mean", 32) == (160, 192)  # 146 -> 160, 196 -> 192
    with pytest.raises(ConfigError, match="bucket -8"):
        bucket_size(10, 10, -8)
    with pytest.raises(ConfigError, match="bucket -8"):
        ExplainConfig(bucket=-8)


def test_batch_shapes_follow_the_explainer_batching() -> None:
    batched = ExplainConfig(tta=TTA, batch_size=8, batch_flips=True)
    assert batch_shapes(batched, 100, 60) == [
        (2, 50, 30),
        (2, 100, 60),
        (2, 150, 90),
        (2, 200, 120),
    ]
    # 5 images of one size, batch 8: 4 images (8 inputs) per run, then 1 image.
    assert batch_shapes(batched, 100, 60, images=5)[:2] == [(8, 50, 30), (2, 50, 30)]
    single = ExplainConfig(tta=TTA, batch_size=1, batch_flips=False)
    assert batch_shapes(single, 100, 60) == [
        (1, 50, 30),
        (1, 50, 30),
        (1, 100, 60),
        (1, 100, 60),
        (1, 150, 90),
        (1, 150, 90),
        (1, 200, 120),
        (1, 200, 120),
    ]
    assert batch_shapes(ExplainConfig(bucket=32), 100, 60, images=3) == [(3, 96, 64)]


def test_shape_profile_from_tta_plan_covers_every_run() -> None:
    config = ExplainConfig(tta=TTA, batch_size=4, batch_flips=True, bucket=32)
    profile = shape_profile(config, 64, 512)
    assert profile.min == (2, 32, 32)  # scale 0.5 of a 64 px side, one image and its flip
    assert profile.max == (4, 1024, 1024)  # scale 2 of 512 px, two images and their flips
    assert profile.opt == (2, 512, 512)
    rng = np.random.default_rng(0)
    for _ in range(200):  # every run of every image size in the range stays inside
        h, w = (int(v) for v in rng.integers(64, 513, 2))
        for n, sh, sw in batch_shapes(config, h, w, int(rng.integers(1, 6))):
            assert profile.contains(n, sh, sw), (h, w, n, sh, sw)
    with pytest.raises(ConfigError, match="not a range"):
        shape_profile(config, 512, 64)


def test_session_options_reach_providers() -> None:
    config = SessionConfig(
        cuda=CudaConfig(cudnn_search="exhaustive"),
        trt_profile=ShapeProfile((1, 8, 8), (1, 16, 16), (2, 32, 32)),
        provider_options=(("cuda", {"cudnn_conv_use_max_workspace": 0}),),
    )
    cuda = config.options_for("CUDAExecutionProvider")
    assert cuda["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert cuda["cudnn_conv_use_max_workspace"] == "0"  # explicit options win, as strings
    trt = config.options_for("TensorrtExecutionProvider", "input_1")
    assert trt["trt_profile_max_shapes"] == "input_1:2x32x32x3"
    assert config.options_for("CPUExecutionProvider") == {}


def test_cli_session_config_plans_the_profile(tmp_path: Path) -> None:
    explain = ExplainConfig(tta=TTA, batch_size=2, bucket=16)
    config = _session_config("tensorrt,cuda", explain, 1, "auto", tmp_path, True, 32, 256)
    assert config.providers == ("tensorrt", "cuda") and config.bucketed
    assert config.options_for("CUDAExecutionProvider")["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    trt = config.options_for("TensorrtExecutionProvider")
    assert trt["trt_fp16_enable"] == "True" and trt["device_id"] == "1"
    assert trt["trt_profile_max_shapes"] == "images:2x512x512x3"
    with pytest.raises(ConfigError, match="--cudnn-search 'fastest'"):
        _session_config("cuda", explain, cudnn_search="fastest")


def test_gpu_request_falls_back_to_cpu_with_one_warning(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = CamSession(path, SessionConfig(providers=("tensorrt",)))
    fallback = [w for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    assert len(fallback) == 1 and "using CPU instead" in str(fallback[0].message)
    assert session.providers == ["CPUExecutionProvider"] and not session.on_gpu
    assert not session.uses_io_binding  # auto: GPUs only


@pytest.mark.parametrize("kind", ["cam", "features"])
def test_io_binding_path_equals_plain_run(tmp_path: Path, kind: str) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, kind=kind, offset=0.2)
    x = np.random.default_rng(1).uniform(0, 255, (2, 17, 23, 3)).astype(np.float32)
    plain = CamSession(path, SessionConfig(io_binding=False))
    bound = CamSession(path, SessionConfig(io_binding=True))
    assert bound.uses_io_binding and not plain.uses_io_binding
    for a, b in zip(plain.run(x), bound.run(x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_runs_outside_the_tensorrt_profile_are_refused(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx"))
    session._profile = ShapeProfile((1, 8, 8), (1, 16, 16), (2, 32, 32))  # as if on TensorRT
    session.run(np.zeros((2, 32, 20, 3), np.float32))
    with pytest.raises(InputError, match=r"1 input\(s\) of 40x20 pixels is outside the TensorRT"):
        session.run(np.zeros((1, 40, 20, 3), np.float32))


def test_flip_batching_does_not_change_maps(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx", channels=3, offset=0.4))
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in ((30, 41), (30, 41), (25, 18))]
    out = {}
    for flips in (True, False):
        config = ExplainConfig(tta=TTA, classes=ClassSelection("all"), batch_flips=flips)
        explainer = Explainer(session, config)
        assert explainer.batch_flips is flips
        out[flips] = explainer.explain(images)
    for a, b in zip(out[True], out[False], strict=True):
        np.testing.assert_allclose(a.maps, b.maps, atol=1e-6)
    assert Explainer(session, ExplainConfig(tta=TTA)).batch_flips is False  # auto on CPU


def test_bucketed_maps_stay_at_image_size_and_close_to_exact(tmp_path: Path) -> None:
    """A smooth model: bucketing changes each pass's size by < half a bucket per side."""
    session = CamSession(channel_model(tmp_path / "m.onnx", channels=3))
    yy, xx = np.mgrid[0:101, 0:77]
    image = np.stack([xx * 3.0, yy * 2.0, (xx + yy) * 1.5], -1).clip(0, 255).astype(np.uint8)
    exact = Explainer(session, ExplainConfig(tta=TTA, classes=ClassSelection("all")))
    bucketed = Explainer(session, ExplainConfig(tta=TTA, classes=ClassSelection("all"), bucket=16))
    (a,), (b,) = exact.explain(image), bucketed.explain(image)
    assert a.maps.shape == b.maps.shape == (101, 77, 3)
    assert float(np.abs(a.maps - b.maps).max()) < 0.05


def test_warmup_shapes() -> None:
    config = ExplainConfig(
        tta=TTAConfig((1.0, 2.0), True), batch_size=2, batch_flips=True, bucket=32
    )
    shapes = warmup_shapes(config, sizes=[(100, 60)])
    assert shapes == [(2, 96, 64), (2, 192, 128)]  # 1 image and a full batch are both 2 inputs
    ranged = warmup_shapes(config, min_side=64, max_side=128)
    # Sides 64..128 at scale 1 bucket to 64, 96 or 128 and at scale 2 to 128..256: 3 and 5
    # sizes per side, 9 + 25 shapes, one of them (128x128) in both, all with batch 2.
    assert len(ranged) == 9 + 25 - 1 and {n for n, _, _ in ranged} == {2}
    with pytest.raises(ConfigError, match="needs --bucket"):
        warmup_shapes(ExplainConfig(), min_side=64, max_side=128)


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


def test_openvino_options() -> None:
    from cam_rt.runtime.providers import OpenVINOConfig

    amx = frozenset({"avx2", "amx_bf16", "amx_tile"})
    avx2 = frozenset({"avx2", "fma"})
    auto = OpenVINOConfig()
    assert auto.resolved_precision(amx) == "bf16" and auto.resolved_precision(avx2) == "fp32"
    avx512 = frozenset({"avx2", "avx512f", "avx512_bf16"})  # bf16 without AMX ran slower here
    assert auto.resolved_precision(avx512) == "fp32"
    assert OpenVINOConfig(precision="bf16").resolved_precision(avx2) == "bf16"  # forced
    assert auto.ort_options(avx2) == {"device_type": "CPU", "precision": "FP32"}
    bf16 = auto.ort_options(amx)
    assert json.loads(bf16["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}
    forced = OpenVINOConfig(
        precision="fp16", device_type="GPU", num_threads=2, cache_dir=Path("/tmp/ov")
    )
    assert forced.ort_options(amx) == {
        "device_type": "GPU",
        "precision": "FP16",
        "cache_dir": "/tmp/ov",
        "num_of_threads": "2",
    }
    assert OpenVINOConfig(device_type="GPU").resolved_precision(amx) == "fp32"  # AMX is CPU's
    with pytest.raises(ConfigError, match="fp16 on GPU or NPU"):
        OpenVINOConfig(precision="fp16")
    with pytest.raises(ConfigError, match="bf16 is a CPU precision"):
        OpenVINOConfig(precision="bf16", device_type="NPU")
    with pytest.raises(ConfigError, match="precision 'int4' is unknown"):
        OpenVINOConfig(precision="int4")  # type: ignore[arg-type]


def test_static_shape_sessions_match_and_stay_bounded(tmp_path: Path) -> None:
    """Per-shape sessions (OpenVINO's mode) on the CPU provider: same outputs, LRU bound."""
    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.1)
    dynamic = CamSession(path)
    static = CamSession(path, SessionConfig(static_shapes=True, max_static_sessions=2))
    assert dynamic.static_sessions is None and static.static_sessions == 0
    rng = np.random.default_rng(3)
    for shape in ((1, 10, 12), (2, 10, 12), (1, 10, 12), (1, 7, 9), (1, 10, 12)):
        x = rng.uniform(0, 255, (*shape, 3)).astype(np.float32)
        for a, b in zip(dynamic.run(x), static.run(x), strict=True):
            np.testing.assert_array_equal(a, b)
        assert static.static_sessions is not None and static.static_sessions <= 2


def test_static_sessions_build_each_shape_once_under_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cam_rt.runtime.session import _StaticSessions

    built: list[dict[str, int]] = []

    def build(overrides: dict[str, int]) -> object:
        built.append(overrides)
        return object()

    cache = _StaticSessions(build, {0: "batch", 1: "height", 2: "width"}, limit=3)
    shapes = [(1, 8, 8, 3), (2, 8, 8, 3)] * 20
    with ThreadPoolExecutor(4) as pool:
        sessions = list(pool.map(cache.get, shapes))
    assert len(built) == 2 and len({id(s) for s in sessions}) == 2
    assert {"batch": 2, "height": 8, "width": 8} in built
    for i in range(5):  # least recently used sessions are dropped past the limit
        cache.get((1, 16 + i, 8, 3))
    assert len(cache) == 3


def test_session_precision_names(tmp_path: Path) -> None:
    assert CamSession(channel_model(tmp_path / "m.onnx")).precision == "fp32"


class _FakeValue:
    def __init__(self, shape: list[int]) -> None:
        self.shape, self.data = tuple(shape), np.zeros(shape, np.float32)

    def update_inplace(self, x: np.ndarray) -> None:
        assert x.shape == self.shape  # a graph's buffers never change shape
        self.data[...] = x

    def numpy(self) -> np.ndarray:
        return self.data.copy()


class _FakeOrt:
    """The parts of onnxruntime that CUDA graph runs use, recording what happens."""

    def __init__(self) -> None:
        self.allocated: list[tuple[int, ...]] = []
        ort = self

        class RunOptions:
            def __init__(self) -> None:
                self.entries: dict[str, str] = {}

            def add_run_config_entry(self, key: str, value: str) -> None:
                self.entries[key] = value

        class OrtValue:
            @staticmethod
            def ortvalue_from_shape_and_type(
                shape: list[int], dtype: object, device: str, device_id: int
            ) -> _FakeValue:
                assert device == "cuda" and device_id == 1
                ort.allocated.append(tuple(shape))
                return _FakeValue(shape)

        self.RunOptions, self.OrtValue = RunOptions, OrtValue


class _FakeSession:
    """scores = mean over pixels, maps = the input halved in size: a model stand-in."""

    def __init__(self) -> None:
        self.graph_ids: list[str] = []

    @staticmethod
    def compute(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps = x[:, ::2, ::2, :2]
        return maps.mean(axis=(1, 2)), np.ascontiguousarray(maps)

    def io_binding(self) -> Any:
        session = self

        class Binding:
            def __init__(self) -> None:
                self.cpu: np.ndarray | None = None
                self.inp: _FakeValue | None = None
                self.outs: list[_FakeValue] = []

            def bind_cpu_input(self, name: str, x: np.ndarray) -> None:
                self.cpu = x

            def bind_output(self, name: str, device: str, device_id: int) -> None:
                pass

            def bind_ortvalue_input(self, name: str, value: _FakeValue) -> None:
                self.inp = value

            def bind_ortvalue_output(self, name: str, value: _FakeValue) -> None:
                self.outs = [*self.outs, value]

            def copy_outputs_to_cpu(self) -> tuple[np.ndarray, np.ndarray]:
                return self.result

            def run(self, options: Any) -> None:
                session.graph_ids.append(options.entries["gpu_graph_id"])
                if self.cpu is not None:
                    self.result = session.compute(self.cpu)
                else:
                    assert self.inp is not None
                    for out, value in zip(self.outs, session.compute(self.inp.data), strict=True):
                        out.data[...] = value

        return Binding()

    def run_with_iobinding(self, binding: Any, options: Any) -> None:
        binding.run(options)


def test_cuda_graph_per_shape_with_fixed_buffers() -> None:
    """The CUDA-graph runner's logic on CPU stand-ins: first run of a shape uncaptured (it gives
    the output shapes), then one graph id and one set of device buffers per shape, replayed."""
    from cam_rt.runtime.session import _CudaGraphs

    ort, session = _FakeOrt(), _FakeSession()
    graphs = _CudaGraphs(ort, device_id=1, limit=2)
    rng = np.random.default_rng(0)
    shapes = [(1, 8, 8, 3), (1, 8, 8, 3), (1, 8, 8, 3), (2, 8, 8, 3), (2, 8, 8, 3), (1, 4, 6, 3)]
    for shape in shapes:
        x = rng.uniform(0, 255, shape).astype(np.float32)
        scores, maps = graphs.run(session, "images", ("scores", "cams"), x)
        want_scores, want_maps = _FakeSession.compute(x)
        np.testing.assert_array_equal(scores, want_scores)
        np.testing.assert_array_equal(maps, want_maps)
    # shape 1: uncaptured, then graph 1 twice; shape 2: uncaptured, graph 2; shape 3: past the
    # limit of 2 graphs, uncaptured.
    assert session.graph_ids == ["-1", "1", "1", "-1", "2", "-1"]
    assert len(graphs) == 2
    assert ort.allocated == [  # input, scores, maps buffers for each captured shape, once
        (1, 8, 8, 3),
        (1, 2),
        (1, 4, 4, 2),
        (2, 8, 8, 3),
        (2, 2),
        (2, 4, 4, 2),
    ]


def test_cuda_graph_options() -> None:
    assert CudaConfig(cuda_graphs=True).ort_options(True)["enable_cuda_graph"] == "1"
    assert "enable_cuda_graph" not in CudaConfig().ort_options(True)
    with pytest.raises(ConfigError, match="size buckets"):
        SessionConfig(cuda=CudaConfig(cuda_graphs=True))
    SessionConfig(cuda=CudaConfig(cuda_graphs=True), bucketed=True)
    result = CliRunner().invoke(get_app(), ["bench", "m.onnx", "--cuda-graphs"])
    assert result.exit_code == 1 and "--bucket" in result.output
