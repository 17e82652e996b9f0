"""CamSession and SessionConfig: model files, providers and their options, IO binding, errors."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ConfigError,
    CudaConfig,
    ExplainConfig,
    Explainer,
    InputError,
    ModelLoadError,
    ProviderError,
    ProviderFallbackWarning,
    SessionConfig,
    ShapeProfile,
    TensorRTConfig,
    TTAConfig,
)
from tests.onnx_models import channel_model

TTA = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "mean")
TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def test_session_reads_metadata(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx", stride=1, class_names=("r", "g")))
    assert session.class_names == ("r", "g")
    assert session.providers[-1] == "CPUExecutionProvider"
    scores, maps = session.run(np.full((2, 5, 6, 3), 51, np.float32))
    assert scores.shape == (2, 2) and maps.shape == (2, 5, 6, 2)
    np.testing.assert_allclose(maps, 0.2, rtol=1e-6)


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="bad.onnx is not a usable ONNX model"):
        CamSession(bad)
    with pytest.raises(ModelLoadError, match="does not exist"):
        CamSession(tmp_path / "none.onnx")


def test_threads_give_single_threaded_results(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3)
    explainer = Explainer(
        CamSession(path),
        ExplainConfig(TTAConfig((0.5, 1.0, 1.5), True), classes=ClassSelection("all")),
    )
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (int(h), int(w), 3), dtype=np.uint8)
        for h, w in rng.integers(16, 64, (12, 2))
    ]
    single = [explainer.explain(img)[0].maps for img in images]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda img: explainer.explain(img)[0].maps, images * 3))
    for i, maps in enumerate(threaded):
        np.testing.assert_array_equal(maps, single[i % len(images)])


def test_session_config_validation() -> None:
    with pytest.raises(ConfigError, match="providers is empty"):
        SessionConfig(providers=())
    with pytest.raises(ConfigError, match="intra_op_threads"):
        SessionConfig(intra_op_threads=-1)


def test_session_config_takes_loose_types() -> None:
    assert SessionConfig(providers="cuda,cpu").providers == ("cuda", "cpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="intra_op_threads '2'"):
        SessionConfig(intra_op_threads="2")  # type: ignore[arg-type]
    options = SessionConfig(provider_options=(("cuda", {"device_id": 1}),)).provider_options
    assert options == (("CUDAExecutionProvider", {"device_id": 1}),)


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


def test_io_binding_binds_the_configured_gpu() -> None:
    """Outputs are bound on the GPU the session runs on, not on device 0: TensorRT's or CUDA's
    device_id (whichever runs first), or a provider_options override."""
    on_one = SessionConfig(tensorrt=TensorRTConfig(device_id=1), cuda=CudaConfig(device_id=1))
    assert on_one.binding_device([TRT, CUDA, CPU]) == ("cuda", 1)
    assert on_one.binding_device([CUDA, CPU]) == ("cuda", 1)
    trt_only = SessionConfig(tensorrt=TensorRTConfig(device_id=2))
    assert trt_only.binding_device([TRT, CPU]) == ("cuda", 2)
    assert trt_only.binding_device([CUDA, CPU]) == ("cuda", 0)
    override = SessionConfig(provider_options=(("cuda", {"device_id": 3}),))
    assert override.binding_device([CUDA, CPU]) == ("cuda", 3)
    assert on_one.binding_device([CPU]) == ("cpu", 0)
    bad = SessionConfig(provider_options=(("cuda", {"device_id": "gpu1"}),))
    with pytest.raises(ConfigError, match="device_id 'gpu1' of CUDAExecutionProvider"):
        bad.binding_device([CUDA, CPU])


def test_gpu_request_falls_back_to_cpu_with_one_warning(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = CamSession(path, SessionConfig(providers=("tensorrt",)))
    fallback = [w for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    assert len(fallback) == 1 and "using CPU instead" in str(fallback[0].message)
    assert session.providers == ["CPUExecutionProvider"] and not session.on_gpu
    assert not session.uses_io_binding  # auto: GPUs only


def test_requesting_a_missing_gpu_warns_once_and_runs(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = CamSession(path, SessionConfig(providers=("tensorrt",)))
    messages = [str(w.message) for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    import onnxruntime

    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        assert len(messages) == 1 and "tensorrt" in messages[0]
    assert session.providers[-1] == "CPUExecutionProvider"
    assert onnx.load(str(path)).graph.output[0].name == "scores"


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


@pytest.mark.parametrize("io_binding", [False, True])
def test_onnxruntime_errors_become_provider_errors(tmp_path: Path, io_binding: bool) -> None:
    """A fixed-size file run at another size: ONNX Runtime refuses, cam-rt says so in one line."""
    path = channel_model(tmp_path / "m.onnx", input_size=(8, 8), fixed_size=True)
    session = CamSession(path, SessionConfig(io_binding=io_binding))
    assert session.run(np.zeros((1, 8, 8, 3), np.float32))[1].shape == (1, 8, 8, 2)
    with pytest.raises(
        ProviderError, match=r"ONNX Runtime failed on a batch of shape \(1, 9, 8, 3\)"
    ) as caught:
        session.run(np.zeros((1, 9, 8, 3), np.float32))
    assert "Got invalid dimensions for input" in str(caught.value)  # ONNX Runtime's own words
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("bug", [ZeroDivisionError, RuntimeError, KeyError])
def test_bugs_are_not_provider_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bug: type[Exception]
) -> None:
    """An exception that is not onnxruntime's (a bug) comes out unchanged, with its traceback."""
    session = CamSession(channel_model(tmp_path / "m.onnx"))

    class Broken:
        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            raise bug("a bug in cam-rt")

    monkeypatch.setattr(session, "_session", Broken())
    with pytest.raises(bug, match="a bug in cam-rt"):
        session.run(np.zeros((1, 8, 8, 3), np.float32))


def test_outputs_of_the_wrong_batch_size_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx"))
    real = session._session

    class DropsOne:
        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [out[:-1] for out in real.run(names, feeds)]

    monkeypatch.setattr(session, "_session", DropsOne())
    with pytest.raises(ProviderError, match=r"gave 1 score rows and 1 maps for a batch of 2"):
        session.run(np.zeros((2, 8, 8, 3), np.float32))


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


def test_session_precision_names(tmp_path: Path) -> None:
    assert CamSession(channel_model(tmp_path / "m.onnx")).precision == "fp32"
