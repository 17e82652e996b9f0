"""CPU vs CUDA vs TensorRT parity of the maps. Runs only where a CUDA provider works.

Not run on the development machine or CI (no GPU there); see the README's verification table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ExplainConfig,
    Explainer,
    SessionConfig,
    TTAConfig,
    available_providers,
)
from cam_rt.runtime.backend.providers import TensorRTConfig

from ..onnx_models import channel_model

pytestmark = pytest.mark.gpu

HAS_CUDA = "CUDAExecutionProvider" in available_providers()
HAS_TRT = "TensorrtExecutionProvider" in available_providers()


def _maps(path: Path, device: str) -> list[np.ndarray]:
    config = ExplainConfig(TTAConfig((0.5, 1.0, 1.5, 2.0), True), ClassSelection("all"))
    explainer = Explainer(CamSession(path, SessionConfig(providers=(device,))), config)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((97, 131), (160, 224))]
    return [r.maps for r in explainer.explain(images)]


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA execution provider on this machine")
def test_cuda_matches_cpu(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3)
    session = CamSession(path, SessionConfig(providers=("cuda",)))
    assert session.providers[0] == "CUDAExecutionProvider"
    for cpu, gpu in zip(_maps(path, "cpu"), _maps(path, "cuda"), strict=True):
        np.testing.assert_allclose(gpu, cpu, atol=1e-4)


@pytest.mark.skipif(not HAS_TRT, reason="no TensorRT execution provider on this machine")
def test_tensorrt_matches_cpu(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3)
    for cpu, trt in zip(_maps(path, "cpu"), _maps(path, "tensorrt"), strict=True):
        np.testing.assert_allclose(trt, cpu, atol=1e-3)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA execution provider on this machine")
def test_cuda_io_binding_equals_plain_run(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)
    bound = CamSession(path, SessionConfig(providers=("cuda",)))  # auto: IO binding on GPUs
    plain = CamSession(path, SessionConfig(providers=("cuda",), io_binding=False))
    assert bound.uses_io_binding and bound.on_gpu
    for a, b in zip(bound.run(x), plain.run(x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.skipif(not HAS_TRT, reason="no TensorRT execution provider on this machine")
def test_tensorrt_profile_from_the_tta_plan_builds_once(tmp_path: Path) -> None:
    """Every TTA pass lies inside the planned profile: the second pass over new image sizes
    costs no engine build (within 5x of a warm run, where a rebuild takes seconds)."""
    import time

    from cam_rt.runtime.plan import shape_profile

    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3)
    config = ExplainConfig(TTAConfig((0.5, 1.0, 1.5, 2.0), True), ClassSelection("all"))
    session = CamSession(
        path,
        SessionConfig(
            providers=("tensorrt",),
            trt_profile=shape_profile(config, 32, 256),
            tensorrt=TensorRTConfig(cache_dir=tmp_path / "trt"),
        ),
    )
    explainer = Explainer(session, config)
    rng = np.random.default_rng(0)
    explainer.explain(rng.integers(0, 256, (100, 120, 3), dtype=np.uint8))  # builds the engine
    warm = time.perf_counter()
    explainer.explain(rng.integers(0, 256, (100, 120, 3), dtype=np.uint8))
    warm = time.perf_counter() - warm
    start = time.perf_counter()
    explainer.explain(rng.integers(0, 256, (211, 77, 3), dtype=np.uint8))  # new sizes
    assert time.perf_counter() - start < 5 * warm + 0.05


@pytest.mark.skipif(not HAS_TRT, reason="no TensorRT execution provider on this machine")
def test_tensorrt_fp16_fidelity(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3)
    config = ExplainConfig(TTAConfig((0.5, 1.0, 1.5, 2.0), True), ClassSelection("all"))
    fp16 = SessionConfig(providers=("tensorrt",), tensorrt=TensorRTConfig(fp16=True))
    image = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    (a,) = Explainer(CamSession(path, fp16), config).explain(image)
    (b,) = Explainer(CamSession(path, SessionConfig(providers=("cpu",))), config).explain(image)
    assert float(np.abs(a.maps - b.maps).max()) < 1e-2  # normalized maps, fp16 rounding


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA execution provider on this machine")
def test_cuda_graphs_replay_the_same_maps(tmp_path: Path) -> None:
    """--cuda-graphs with buckets: captured and replayed runs give the plain CUDA maps."""
    from cam_rt.runtime.backend.providers import CudaConfig

    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.3)
    config = ExplainConfig(TTAConfig((0.5, 1.0, 1.5, 2.0), True), ClassSelection("all"), bucket=32)
    graphs = SessionConfig(providers=("cuda",), cuda=CudaConfig(cuda_graphs=True), bucketed=True)
    plain = SessionConfig(providers=("cuda",), bucketed=True)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (100, 120, 3), dtype=np.uint8) for _ in range(3)]
    a = Explainer(CamSession(path, graphs), config)
    b = Explainer(CamSession(path, plain), config)
    for _ in range(2):  # the second round replays captured graphs
        for x, y in zip(a.explain(images), b.explain(images), strict=True):
            np.testing.assert_allclose(x.maps, y.maps, atol=1e-5)
