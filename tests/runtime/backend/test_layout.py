"""A model file's input and outputs checked against its metadata (cam-rt and plain files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

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


def _wrong_model(path: Path, form: str) -> Path:
    """A 3-class cam-rt file (channel_model's metadata) in one wrong ``form``, built with
    onnx.helper: NCHW input, uint8 input, rank-3 input, rank-1 scores, rank-3 or int32 maps."""
    elem = {"uint8": TensorProto.UINT8}.get(form, TensorProto.FLOAT)
    dims: list[int | str] = {
        "nchw": ["batch", 3, "height", "width"],
        "rank3": ["height", "width", 3],
    }.get(form, ["batch", "height", "width", 3])
    nodes = []
    x = "images"
    if form == "uint8":
        nodes.append(helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT))
        x = "x"
    elif form == "nchw":
        nodes.append(helper.make_node("Transpose", ["images"], ["x"], perm=[0, 2, 3, 1]))
        x = "x"
    elif form == "rank3":
        nodes.append(helper.make_node("Unsqueeze", ["images", "zero"], ["x"]))
        x = "x"
    scores_axes, scores_dims = (
        ([1, 2, 3], ["batch"]) if form == "scores1" else ([1, 2], ["batch", 3])
    )
    nodes.append(helper.make_node("ReduceMean", [x], ["scores"], axes=scores_axes, keepdims=0))
    maps_elem, maps_dims = TensorProto.FLOAT, ["batch", "h", "w", 3]
    if form == "maps3":
        nodes.append(helper.make_node("ReduceMean", [x], ["cams"], axes=[2], keepdims=0))
        maps_dims = ["batch", "h", 3]
    elif form == "int32":
        nodes.append(helper.make_node("Cast", [x], ["cams"], to=TensorProto.INT32))
        maps_elem = TensorProto.INT32
    else:
        nodes.append(helper.make_node("Identity", [x], ["cams"]))
    graph = helper.make_graph(
        nodes,
        form,
        [helper.make_tensor_value_info("images", elem, dims)],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, scores_dims),
            helper.make_tensor_value_info("cams", maps_elem, maps_dims),
        ],
        [helper.make_tensor("zero", TensorProto.INT64, [1], [0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, channel_metadata(channels=3).to_props())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


WRONG = {
    "nchw": r"input 'images' \(float32\) has shape \['batch', 3, 'height', 'width'\]; expected "
    r"\(N, H, W, 3\) float32 \(NHWC, channels last; this one looks channels-first\)",
    "uint8": r"input 'images' \(uint8\) has shape \['batch', 'height', 'width', 3\]; expected "
    r"\(N, H, W, 3\) float32",
    "rank3": r"input 'images' \(float32\) has shape \['height', 'width', 3\]; expected",
    "scores1": r"output 'scores' \(float32\) has shape \['batch'\]; expected \(N, 3\) floating",
    "maps3": r"output 'cams' \(float32\) has shape \['batch', 'h', 3\]; expected \(N, h, w, 3\)",
    "int32": r"output 'cams' \(int32\) has shape \['batch', 'h', 'w', 3\]; expected "
    r"\(N, h, w, 3\) floating point",
}


@pytest.mark.parametrize("form", list(WRONG))
def test_wrong_input_or_outputs_are_refused_at_load(tmp_path: Path, form: str) -> None:
    """Refused when the session opens, in one line naming what it has and what cam-rt needs."""
    path = _wrong_model(tmp_path / f"{form}.onnx", form)
    with pytest.raises(ModelLoadError, match=WRONG[form]) as info:
        CamSession(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert message.endswith("import classifiers from elsewhere with 'cam-rt export model.onnx'"), (
        message
    )


@pytest.mark.parametrize("form", ["nchw", "uint8"])
def test_run_refuses_them_before_any_image(tmp_path: Path, form: str) -> None:
    """`cam-rt run` exits 1 with one line before any image (it used to fail every image, 2)."""
    path = _wrong_model(tmp_path / f"{form}.onnx", form)
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / f"{name}.png")
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "cam_rt.runtime.cli"]
    proc = subprocess.run(
        [*cli, "run", str(path), str(tmp_path / "in"), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"cam-rt: error: {path} input 'images'"), line
    assert not (out / "results.jsonl").exists()


def test_declared_types_are_checked_when_given() -> None:
    path = Path("m.onnx")
    layout = metadata_layout(channel_metadata(channels=2).to_props(), path)
    inputs = {"images": ["n", "h", "w", 3]}
    outputs = {"scores": ["n", 2], "cams": ["n", "h", "w", 2]}
    fp16 = {"images": "tensor(float)", "scores": "tensor(float16)", "cams": "tensor(double)"}
    check_layout(layout, inputs, outputs, path, fp16)  # floating outputs of any width
    check_layout(layout, inputs, {"scores": [], "cams": []}, path)  # ranks unknown: at run
    with pytest.raises(ModelLoadError, match=r"input 'images' \(float16\)"):
        check_layout(layout, inputs, outputs, path, {**fp16, "images": "tensor(float16)"})
