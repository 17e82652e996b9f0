"""A model file's input and outputs checked against its metadata (cam-rt and plain files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cam_rt.runtime import CamSession, ModelLoadError, PlainModel
from cam_rt.runtime.backend.layout import check_layout, metadata_layout
from tests.onnx_models import channel_metadata, channel_model


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


def test_class_names_must_match_the_model(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, class_names=("a", "b"))
    with pytest.raises(ModelLoadError, match="the scores have 3 classes but 2 class names"):
        CamSession(path)
    plain = channel_model(tmp_path / "p.onnx", channels=3, metadata=False)
    with pytest.raises(ModelLoadError, match="3 classes but 2 class names"):
        CamSession(plain, plain=PlainModel("scores", "cams", "cams", class_names=("a", "b")))


def test_inputs_must_be_one_nhwc_image() -> None:
    path = Path("m.onnx")
    layout = metadata_layout(channel_metadata(channels=2, kind="features").to_props(), path)
    assert (layout.input, layout.scores, layout.maps) == ("images", "scores", "features")
    assert layout.weights is not None and layout.weights.shape == (2, 2)
    outputs = {"scores": ["n", 2], "features": ["n", "h", "w", 2]}
    check_layout(layout, {"images": ["n", "h", "w", 3]}, outputs, path)  # fits
    with pytest.raises(ModelLoadError, match=r"has inputs \['images', 'mask'\]; expected one"):
        check_layout(layout, {"images": ["n", "h", "w", 3], "mask": ["n"]}, outputs, path)
    with pytest.raises(
        ModelLoadError, match=r"has shape \['n', 3, 8, 8\]; expected \(N, H, W, 3\)"
    ):
        check_layout(layout, {"images": ["n", 3, 8, 8]}, outputs, path)  # NCHW
    odd = {"scores": ["n", 2], "features": ["n", "h", "w", 5]}
    with pytest.raises(ModelLoadError, match="has 5 channels but the CAM weights expect 2"):
        check_layout(layout, {"images": ["n", "h", "w", 3]}, odd, path)
