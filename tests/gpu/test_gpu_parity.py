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
