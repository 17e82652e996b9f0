"""Plain ONNX files (no cam-rt metadata): their outputs, CAM weights, class names and stride."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime import CamSession, ConfigError, ModelLoadError, PlainModel, Preprocessing
from cam_rt.runtime.backend.plain import load_cam_weights
from tests.onnx_models import channel_model


def test_plain_model_checks_and_stride(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="maps_kind 'cam' is unknown"):
        PlainModel("s", "m", "cam")  # type: ignore[arg-type]
    plain = channel_model(tmp_path / "p.onnx", channels=2, metadata=False)
    session = CamSession(plain, plain=PlainModel("scores", "cams", "cams"))
    assert session.output_stride == 1  # measured when opening, not on the first call
    assert session.class_names == ("class_0", "class_1")  # counted from the scores output
    with pytest.raises(ModelLoadError, match="has 2 channels but the CAM weights expect 3"):
        CamSession(
            plain, plain=PlainModel("scores", "cams", "features", np.ones((3, 2), np.float32))
        )


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


def test_cam_weights_shapes() -> None:
    kernel = np.arange(6, dtype=np.float64).reshape(1, 1, 3, 2)  # a 1x1 conv kernel
    weights = load_cam_weights(kernel)
    assert weights.dtype == np.float32 and weights.shape == (3, 2)
    np.testing.assert_array_equal(weights, kernel[0, 0])
    with pytest.raises(ModelLoadError, match=r"shape \(6,\); expected \(K, L\)"):
        load_cam_weights(np.zeros(6))
