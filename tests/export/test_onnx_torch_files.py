"""Real torch.onnx files (tests/data/torch, made by PyTorch 2.13's exporters, see make_models.py):
imported, then compared with PyTorch's own logits and a CAM of PyTorch's own features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from cam_rt.export import ExportConfig
from cam_rt.export.onnx_import import import_onnx

DATA = Path(__file__).resolve().parents[1] / "data" / "torch"
MODELS = sorted(p.stem for p in DATA.glob("*.onnx"))


def test_the_files_are_there() -> None:
    assert len(MODELS) == 6, MODELS


@pytest.mark.parametrize("name", MODELS)
def test_torch_file_matches_pytorch(tmp_path: Path, name: str) -> None:
    ref = np.load(DATA / f"{name}.npz")
    out = tmp_path / "cam.onnx"
    report = import_onnx(DATA / f"{name}.onnx", out, ExportConfig(activation="softmax"))
    meta = report.metadata
    assert meta.input_size == (64, 64) and not meta.fixed_size
    assert meta.method == ("grad-cam" if name == "mlp_softmax" else "cam")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = np.ascontiguousarray(ref["x"].transpose(0, 2, 3, 1))  # no preprocessing: as fed
    scores, cams = session.run(None, {"images": images})
    logits = ref["logits"]
    assert np.abs(scores - logits).max() / np.ptp(logits) < 1e-4
    if meta.method == "cam":
        want = ref["features"].transpose(0, 2, 3, 1) @ ref["weight"].T
        assert np.abs(cams - want).max() / np.ptp(want) < 1e-4
    else:
        assert cams.shape == (len(images), 8, 8, 5)
    # any batch and size: 3 images of 80x96 run (timm/efficientnet were exported with batch 1)
    scores, cams = session.run(None, {"images": np.zeros((3, 80, 96, 3), np.float32)})
    assert scores.shape == (3, 5) and cams.shape == (3, 10, 12, 5)
