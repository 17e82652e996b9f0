"""The ONNX Runtime session: providers, model files, plain files, threads."""

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
    ExplainConfig,
    Explainer,
    ModelLoadError,
    PlainModel,
    Preprocessing,
    ProviderFallbackWarning,
    SessionConfig,
    TTAConfig,
    resolve_providers,
)

from .onnx_models import channel_model

GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_providers() -> None:
    assert resolve_providers(["auto"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers(["auto"], GPU) == GPU
    assert resolve_providers(["AUTO"], GPU[1:]) == GPU[1:]
    ov = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["auto"], ov) == ov  # onnxruntime-openvino installed


def test_explicit_providers_case_insensitive_with_cpu_fallback() -> None:
    assert resolve_providers(["CUDA"], GPU) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["cpu", "cuda"], GPU) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.warns(ProviderFallbackWarning, match="'cuda' .* not available.*using CPU"):
        assert resolve_providers(["cuda"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_unknown_provider_lists_names() -> None:
    with pytest.raises(ConfigError, match="'tpu' is unknown: use auto or one of tensorrt, cuda"):
        resolve_providers(["tpu"], ["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match="no execution provider"):
        resolve_providers([" "], ["CPUExecutionProvider"])


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


def test_file_without_metadata(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "plain.onnx", metadata=False)
    with pytest.raises(ModelLoadError, match="has no cam-rt metadata"):
        CamSession(path)


def test_outputs_that_do_not_match(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "odd.onnx", maps_name="heatmaps")
    with pytest.raises(
        ModelLoadError, match=r"has outputs \['scores', 'heatmaps'\]; expected 'scores' and 'cams'"
    ):
        CamSession(path)


def test_plain_model_with_npy_weights(tmp_path: Path) -> None:
    """A two-output file exported elsewhere works when described, with weights from a .npy."""
    path = channel_model(
        tmp_path / "plain.onnx",
        channels=2,
        kind="features",
        metadata=False,
        scores_name="logits",
        maps_name="feats",
    )
    weights = np.asarray([[1, 0.5], [-1, 1]], np.float32)
    np.save(tmp_path / "w.npy", weights)
    plain = PlainModel(
        "logits",
        "feats",
        "features",
        tmp_path / "w.npy",
        class_names=("a", "b"),
        preprocessing=Preprocessing("x", scale=0.5),
    )
    session = CamSession(path, plain=plain)
    x = np.random.default_rng(0).uniform(0, 255, (1, 6, 4, 3)).astype(np.float32)
    _, maps = session.run(x)
    expected = (x[..., :2] * 0.5 / 255) @ weights
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    assert session.output_stride == 1
    with pytest.raises(ConfigError, match="needs cam_weights"):
        CamSession(path, plain=PlainModel("logits", "feats", "features"))
    with pytest.raises(ModelLoadError, match="cannot read CAM weights"):
        CamSession(path, plain=PlainModel("logits", "feats", "features", tmp_path / "no.npy"))


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
