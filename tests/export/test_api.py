"""Export parity and file contents on tiny Keras 3 models."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from cam_rt.export import ExportConfig, export_model
from cam_rt.export.convert import FORBIDDEN_OPS
from cam_rt.runtime.metadata import ModelMetadata
from tests.conftest import build_conv_head, images, run_onnx

pytest.importorskip("tensorflow")


def _meta(path: Path) -> ModelMetadata:
    model = onnx.load(str(path))
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})


def _sub_model(model: Any, layer: str) -> Any:
    import keras

    return keras.Model(model.inputs[0], model.get_layer(layer).output)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (b.max() - b.min()))


def test_gap_dense_cam_matches_keras(
    tmp_path: Path, keras_file: Path, gap_dense_model: Any
) -> None:
    out = tmp_path / "m.onnx"
    report = export_model(keras_file, out, ExportConfig())
    assert out.is_file() and report.size_bytes == out.stat().st_size
    assert out.stat().st_mode & 0o044  # readable by others, like a file written plainly
    assert report.max_rel_error < 1e-5
    assert {(p.height, p.width) for p in report.parity} == {(97, 131), (160, 224)}

    x = images(3, 101, 77, seed=5)
    got = run_onnx(out, x)
    features = np.asarray(_sub_model(gap_dense_model, "conv2")(x))
    kernel, bias = gap_dense_model.get_layer("head").get_weights()
    np.testing.assert_allclose(got["cams"], features @ kernel, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["scores"], features.mean(axis=(1, 2)) @ kernel + bias, atol=1e-5)
    # The scores are pre-activation: softmax of them is the model's prediction.
    e = np.exp(got["scores"] - got["scores"].max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), gap_dense_model(x), atol=1e-6)
    # Spatial mean of the CAM plus the bias is the score (linearity of GAP -> Dense).
    np.testing.assert_allclose(got["cams"].mean(axis=(1, 2)) + bias, got["scores"], atol=1e-5)


def test_metadata_and_graph(tmp_path: Path, keras_file: Path) -> None:
    out = tmp_path / "m.onnx"
    export_model(keras_file, out)
    meta = _meta(out)
    assert meta.output == "cam"
    assert meta.activation == "softmax"
    assert meta.class_names == tuple(f"class_{i}" for i in range(5))
    assert meta.preprocessing.mode == "none"
    assert meta.output_stride == 4
    assert (meta.feature_layer, meta.score_layer) == ("conv2", "head")
    assert meta.source_sha256 == hashlib.sha256(keras_file.read_bytes()).hexdigest()
    assert meta.producer["tf2onnx"] and meta.cam_weights is None

    model = onnx.load(str(out))
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == ("images", ["batch", "height", "width", 3])
    outputs = {
        o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
        for o in model.graph.output
    }
    assert outputs == {"scores": ["batch", 5], "cams": ["batch", "map_height", "map_width", 5]}
    ops = {n.op_type for n in model.graph.node}
    assert not ops & (FORBIDDEN_OPS | {"Shape", "Gather", "Concat"}), ops


def test_conv_head_dilated(tmp_path: Path, conv_head_model: Any) -> None:
    out = tmp_path / "conv.onnx"
    report = export_model(conv_head_model, out, ExportConfig(classes=None))
    assert report.max_rel_error < 1e-5
    meta = _meta(out)
    assert (meta.activation, meta.output_stride) == ("sigmoid", 2)
    assert (meta.feature_layer, meta.score_layer) == ("features", "avg_pool")

    model = onnx.load(str(out))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    dilations = [list(a.ints) for n in convs for a in n.attribute if a.name == "dilations"]
    assert [2, 2] in dilations
    assert not {n.op_type for n in model.graph.node} & (FORBIDDEN_OPS | {"Shape"})

    x = images(2, 45, 67, seed=3)
    got = run_onnx(out, x)
    features = np.asarray(_sub_model(conv_head_model, "features")(x))
    w = conv_head_model.get_layer("logits").get_weights()[0][0, 0]
    assert _rel(got["cams"], features @ w) < 1e-5
    np.testing.assert_allclose(got["cams"].mean(axis=(1, 2)), got["scores"], rtol=1e-5, atol=1e-5)
    sig = 1 / (1 + np.exp(-got["scores"]))
    np.testing.assert_allclose(sig, conv_head_model(x), atol=1e-6)


@pytest.mark.parametrize("dilation", [2, 4])
def test_features_output_gives_same_maps(tmp_path: Path, dilation: int) -> None:
    model = build_conv_head(dilation=dilation, seed=7)
    cam_file, feat_file = tmp_path / "cam.onnx", tmp_path / "feat.onnx"
    export_model(model, cam_file, ExportConfig(output="cam"))
    export_model(model, feat_file, ExportConfig(output="features"))
    meta = _meta(feat_file)
    assert meta.output == "features" and meta.cam_weights is not None
    assert meta.cam_weights.shape == (16, 4)
    x = images(2, 83, 59, seed=9)
    cams = run_onnx(cam_file, x)
    feats = run_onnx(feat_file, x)
    assert set(feats) == {"scores", "features"}
    weighted = feats["features"] @ meta.cam_weights
    assert _rel(weighted, cams["cams"]) <= 1e-5
    np.testing.assert_array_equal(feats["scores"], cams["scores"])


@pytest.mark.parametrize("mode", ["torch", "caffe", "tf"])
def test_preprocessing_is_folded(tmp_path: Path, conv_head_model: Any, mode: str) -> None:
    from cam_rt.export import PREPROCESSING

    out = tmp_path / f"{mode}.onnx"
    export_model(conv_head_model, out, ExportConfig(preprocess=mode))
    pre = PREPROCESSING[mode]
    assert _meta(out).preprocessing == pre
    x = images(1, 40, 48, seed=11)
    order = [2, 1, 0] if pre.channel_order == "BGR" else [0, 1, 2]
    normalized = (x[..., order] * pre.scale - np.array(pre.mean)) / np.array(pre.std)
    got = run_onnx(out, x)
    expected = np.asarray(_sub_model(conv_head_model, "logits")(normalized.astype(np.float32)))
    assert _rel(got["cams"], expected) < 1e-5


def test_explicit_layers(tmp_path: Path, conv_head_model: Any) -> None:
    out = tmp_path / "explicit.onnx"
    config = ExportConfig(feature_layer="features", score_layer="avg_pool", activation="softmax")
    export_model(conv_head_model, out, config)
    meta = _meta(out)
    assert (meta.feature_layer, meta.score_layer, meta.activation) == (
        "features",
        "avg_pool",
        "softmax",
    )


def test_class_names_from_file(tmp_path: Path, conv_head_model: Any) -> None:
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n\nbird\nfish\n")
    out = tmp_path / "named.onnx"
    export_model(conv_head_model, out, ExportConfig(classes=str(names)))
    assert _meta(out).class_names == ("cat", "dog", "bird", "fish")


def test_fp16_keeps_fp32_io(tmp_path: Path, conv_head_model: Any) -> None:
    out = tmp_path / "half.onnx"
    report = export_model(conv_head_model, out, ExportConfig(fp16=True))
    assert report.max_rel_error < 2e-2
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert _meta(out).fp16 is True


def test_external_data_export_loads_replaces_and_serves(tmp_path: Path, keras_file: Path) -> None:
    """--external-data: the weights in NAME.<id>.data beside the model, the same maps, the old
    side file removed when the model is replaced, a clear error without it, and Triton gets it."""
    from cam_rt.runtime import CamSession
    from cam_rt.runtime.errors import ModelLoadError
    from cam_rt.runtime.tools.triton import TritonConfig, write_repository

    single = tmp_path / "single.onnx"
    export_model(keras_file, single)
    out = tmp_path / "ext" / "m.onnx"
    out.parent.mkdir()
    report = export_model(keras_file, out, ExportConfig(external_data=True))
    (data,) = out.parent.glob("m.onnx.*.data")
    assert report.metadata.external_data == data.name and data.stat().st_mode & 0o044
    assert report.size_bytes == out.stat().st_size + data.stat().st_size
    x = images(2, 53, 61, seed=3)
    a, b = CamSession(single).run(x), CamSession(out).run(x)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    other = out.parent / "m.onnx.0badc0de.data"  # not the replaced model's: left alone
    other.write_bytes(b"someone else's")
    export_model(keras_file, out, ExportConfig(external_data=True))  # replace: one side file
    other.unlink()
    (again,) = out.parent.glob("m.onnx.*.data")
    assert again != data and CamSession(out).metadata.external_data == again.name
    folder = write_repository(out, tmp_path / "repo", TritonConfig(name="m"))
    assert (folder / "1" / again.name).read_bytes() == again.read_bytes()
    CamSession(folder / "1" / "model.onnx").run(x)  # loads from the repository as served
    export_model(keras_file, out)  # back to one file: the side file goes
    assert not list(out.parent.glob("*.data"))
    export_model(keras_file, out, ExportConfig(external_data=True))
    next(out.parent.glob("*.data")).unlink()
    with pytest.raises(ModelLoadError, match="side file"):
        CamSession(out)
