"""RemoteSession: a model behind any ``infer`` callable, with a local session's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from cam_rt.runtime import CamSession, ProviderError, RemoteSession, SessionLike
from tests.onnx_models import channel_model


def _served(path: Path, maps_output: str, drop: int = 0):  # type: ignore[no-untyped-def]
    """A stand-in for a server running the file as it is; ``drop`` rows lost per request."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, maps = session.run(["scores", maps_output], {"images": batch})
        return scores[: len(batch) - drop], maps[: len(batch) - drop]

    return infer


@pytest.mark.parametrize("kind", ["cam", "features"])
def test_remote_run_equals_a_local_run(tmp_path: Path, kind: str) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, kind=kind, offset=0.3)
    local = CamSession(path)
    remote = RemoteSession(_served(path, "cams" if kind == "cam" else "features"), local.metadata)
    assert isinstance(remote, SessionLike) and not remote.on_gpu
    x = np.random.default_rng(5).uniform(0, 255, (2, 9, 7, 3)).astype(np.float32)
    timings: dict[str, float] = {}
    for a, b in zip(local.run(x), remote.run(x, timings), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6)
    assert set(timings) == {"remote", "cam_weighting"}


def test_a_server_answering_fewer_rows_is_refused(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=2)
    remote = RemoteSession(_served(path, "cams", drop=1), CamSession(path).metadata)
    with pytest.raises(
        ProviderError,
        match=r"the remote model gave 2 score rows and 2 maps for a batch of 3 input\(s\); expected 3 of each",
    ):
        remote.run(np.zeros((3, 8, 8, 3), np.float32))
