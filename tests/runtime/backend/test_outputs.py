"""Raw model outputs -> checked scores and CAMs (shared by local and remote sessions)."""

from __future__ import annotations

import numpy as np
import pytest

from cam_rt.runtime import ModelLoadError, ProviderError
from cam_rt.runtime.backend.outputs import cam_outputs

CHECK = {"source": "m.onnx", "advice": "check the model"}


def test_features_are_weighted_into_cams() -> None:
    features = np.arange(2 * 2 * 3 * 2, dtype=np.float64).reshape(2, 2, 3, 2)
    weights = np.asarray([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0]], np.float32)  # K=2, L=3
    scores = np.zeros((2, 3), np.float16)
    out_scores, cams = cam_outputs(
        scores, features, batch=2, num_classes=3, weights=weights, **CHECK
    )
    assert out_scores.dtype == cams.dtype == np.float32 and cams.shape == (2, 2, 3, 3)
    # pixel (0, 0, 1): features (2, 3) -> 2*1 + 3*0.5, 2*0 + 3*-1, 2*2 + 3*0
    np.testing.assert_allclose(cams[0, 0, 1], [3.5, -3.0, 4.0])
    cams_in = np.ones((2, 4, 4, 3), np.float32)
    _, same = cam_outputs(scores, cams_in, batch=2, num_classes=3, weights=None, **CHECK)
    assert same is cams_in  # float32 CAMs pass through, not copied


def test_outputs_that_do_not_fit_the_model() -> None:
    scores, cams = np.zeros((1, 3), np.float32), np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(
        ModelLoadError,
        match=r"m.onnx gave features \(1, 4, 4, 3\); expected \(N, h, w, 2\): check the model",
    ):
        cam_outputs(scores, cams, batch=1, num_classes=3, weights=np.ones((2, 3)), **CHECK)
    with pytest.raises(
        ModelLoadError, match=r"gave scores \(1, 3\) and maps \(1, 4, 4, 3\); expected \(N, 2\)"
    ):
        cam_outputs(scores, cams, batch=1, num_classes=2, weights=None, **CHECK)
    with pytest.raises(ModelLoadError, match=r"gave maps of type int64; expected floating point"):
        cam_outputs(scores, cams.astype(np.int64), batch=1, num_classes=3, weights=None, **CHECK)


def test_a_batch_size_other_than_sent_is_refused() -> None:
    scores, cams = np.zeros((1, 3), np.float32), np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(
        ProviderError,
        match=r"gave 1 score rows and 1 maps for a batch of 2 input\(s\); expected 2 of each",
    ):
        cam_outputs(scores, cams, batch=2, num_classes=3, weights=None, **CHECK)
    with pytest.raises(ProviderError, match="gave 2 score rows and 1 maps"):
        cam_outputs(np.zeros((2, 3)), cams, batch=2, num_classes=3, weights=None, **CHECK)
