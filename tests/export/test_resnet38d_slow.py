"""Full-size ResNet38-d export (opt-in: pytest -m slow; about 35 s and 3 GB RSS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from cam_rt.export import ExportConfig, export_model
from tests.conftest import images, run_onnx

pytestmark = pytest.mark.slow
pytest.importorskip("tensorflow")


def test_full_resnet38d_export(tmp_path: Path) -> None:
    out = tmp_path / "resnet38d.onnx"
    report = export_model("resnet38d", out, ExportConfig(weights="none"))
    assert report.max_rel_error < 1e-4
    assert 400 * 2**20 < report.size_bytes < 405 * 2**20
    meta = report.metadata
    assert (meta.num_classes, meta.output_stride, meta.preprocessing.mode) == (20, 8, "torch")
    graph = onnx.load(str(out), load_external_data=False).graph
    ops = {n.op_type for n in graph.node}
    assert not ops & {"SpaceToDepth", "DepthToSpace", "BatchToSpace", "Shape", "Pad"}
    got = run_onnx(out, images(1, 64, 80))
    assert got["cams"].shape == (1, 8, 10, 20)
    np.testing.assert_allclose(got["cams"].mean(axis=(1, 2)), got["scores"], rtol=1e-4, atol=1e-5)
