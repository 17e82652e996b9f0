"""`cam-rt export model.onnx`: heads found in torch.onnx / timm / tf2onnx patterns, rewritten.

Every file is checked here against the ORIGINAL model run by ONNX Runtime (scores) and a NumPy
CAM / Grad-CAM computed in the test from the original's own feature tensor and weights.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from typer.testing import CliRunner

from cam_rt.export import ExportConfig
from cam_rt.export.onnx_import import import_onnx
from cam_rt.runtime.cli import get_app
from cam_rt.runtime.errors import ExportError, ModelLoadError
from cam_rt.runtime.metadata import ModelMetadata
from tests.export import onnx_patterns as pat

TORCH_MEAN = (123.675, 116.28, 103.53)
TORCH_STD = (58.395, 57.12, 57.375)


def _run(path: Path, feed: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return list(session.run(outputs, {name: feed}))


def _weights(path: Path) -> dict[str, np.ndarray]:
    proto = onnx.load(str(path))
    return {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}


def _images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)).astype(np.float32)


def _metadata(path: Path) -> ModelMetadata:
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return ModelMetadata.from_props(props)


def _close(got: np.ndarray, want: np.ndarray, tol: float = 1e-4) -> None:
    span = max(float(want.max() - want.min()), 1e-6)
    assert np.abs(got - want).max() / span < tol, np.abs(got - want).max()


@pytest.mark.parametrize("act", ["relu", "relu6", "silu"])
def test_torchvision_gap_gemm_is_a_cam(tmp_path: Path, act: str) -> None:
    src = pat.torchvision_resnet(tmp_path / "resnet.onnx", act=act)
    dst = tmp_path / "cam.onnx"
    report = import_onnx(
        src, dst, ExportConfig(mean=TORCH_MEAN, std=TORCH_STD, activation="softmax")
    )
    meta = report.metadata
    assert (meta.method, meta.activation, meta.input_size, meta.fixed_size) == (
        "cam",
        "softmax",
        (64, 64),
        False,
    )
    assert meta.output_stride == 8 and meta.num_classes == 5
    assert meta.preprocessing.mean == TORCH_MEAN and meta.preprocessing.std == TORCH_STD

    images = _images(2, 64, 64)
    scores, cams = _run(dst, images)
    by_hand = ((images - np.float32(TORCH_MEAN)) / np.float32(TORCH_STD)).transpose(0, 3, 1, 2)
    ref = pat.with_features_output(src, meta.feature_layer, tmp_path / "ref.onnx")
    logits, features = _run(ref, np.ascontiguousarray(by_hand))
    _close(scores, logits)
    w = _weights(src)["fc.weight"]  # (L, K): torch's Linear, transB=1
    _close(cams, features.transpose(0, 2, 3, 1) @ w.T)
    # dynamic: another size runs and its maps follow the stride
    other_scores, other_cams = _run(dst, _images(1, 81, 97))
    assert other_cams.shape == (1, 11, 13, 5) and other_scores.shape == (1, 5)


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_timm_reduce_mean_batch_one(tmp_path: Path, opset: int) -> None:
    src = pat.timm_reduce_mean(tmp_path / "timm.onnx", opset=opset)
    dst = tmp_path / "cam.onnx"
    report = import_onnx(src, dst, ExportConfig(activation="sigmoid"))
    assert report.metadata.method == "cam" and not report.metadata.fixed_size
    images = _images(3, 64, 64, seed=1)  # batch 3 although the source was exported with 1
    scores, cams = _run(dst, images)
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    ref = pat.with_features_output(src, report.metadata.feature_layer, tmp_path / "ref.onnx")
    logits, features = zip(*(_run(ref, x[i : i + 1]) for i in range(3)), strict=True)
    _close(scores, np.concatenate(logits))
    w = _weights(src)["head/fc.weight"]
    _close(cams, np.concatenate(features).transpose(0, 2, 3, 1) @ w.T)


def test_mlp_head_is_a_grad_cam(tmp_path: Path) -> None:
    src = pat.mlp_head(tmp_path / "mlp.onnx")
    dst = tmp_path / "cam.onnx"
    report = import_onnx(src, dst, ExportConfig(mean=(127.5,) * 3, std=(127.5,) * 3))
    meta = report.metadata
    assert (meta.method, meta.activation) == ("grad-cam", "sigmoid")
    images = _images(2, 48, 48)
    scores, cams = _run(dst, images)
    ref = pat.with_features_output(src, meta.feature_layer, tmp_path / "ref.onnx")
    x = (images - np.float32(127.5)) / np.float32(127.5)
    probs, features = _run(ref, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    _close(0.5 * (1 + np.tanh(scores / 2)), probs)
    # Grad-CAM by hand: d score / d pooled = W2 diag(relu') W1, summed over positions
    wts = _weights(src)
    w1, w2 = wts["head/0.weight"], wts["head/3.weight"]  # (12, K), (L, 12)
    a = features.transpose(0, 2, 3, 1).astype(np.float64)
    z = a.mean(axis=(1, 2))
    hidden = z @ w1.T + next(v for k, v in wts.items() if k.startswith("onnx::Const"))
    grad = np.einsum("lh,nh,hk->nlk", w2, (hidden > 0).astype(np.float64), w1)
    _close(cams, np.einsum("nijk,nlk->nijl", a, grad), 1e-3)


def test_flatten_head_keeps_its_size(tmp_path: Path) -> None:
    src = pat.vgg_flatten(tmp_path / "vgg.onnx")
    dst = tmp_path / "cam.onnx"
    report = import_onnx(src, dst)
    meta = report.metadata
    assert (meta.method, meta.fixed_size, meta.input_size, meta.activation) == (
        "grad-cam",
        True,
        (32, 32),
        "softmax",
    )
    scores, cams = _run(dst, _images(1, 32, 32))
    (probs,) = _run(src, np.ascontiguousarray(_images(1, 32, 32).transpose(0, 3, 1, 2)))
    e = np.exp(scores - scores.max())
    _close(e / e.sum(), probs)
    assert cams.shape == (1, 8, 8, 3)
    dims = onnx.load(str(dst)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [32, 32, 3]


def test_tf2onnx_nhwc_pattern_and_bgr(tmp_path: Path) -> None:
    src = pat.tf2onnx_nhwc(tmp_path / "tf.onnx")
    dst = tmp_path / "cam.onnx"
    report = import_onnx(src, dst, ExportConfig(bgr=True, mean=(10.0, 20.0, 30.0)))
    meta = report.metadata
    assert meta.method == "cam" and meta.activation == "softmax" and not meta.fixed_size
    assert meta.preprocessing.channel_order == "BGR"
    images = _images(2, 40, 40)
    scores, cams = _run(dst, images)
    by_hand = images[..., ::-1] - np.float32([10.0, 20.0, 30.0])
    (probs,) = _run(src, np.ascontiguousarray(by_hand))
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    _close(e / e.sum(axis=1, keepdims=True), probs)
    assert cams.shape == (2, 5, 5, 4)


def test_real_tf2onnx_conversion_of_a_keras_model(tmp_path: Path) -> None:
    """A Keras classifier converted by tf2onnx itself, not by cam-rt."""
    tf = pytest.importorskip("tensorflow")
    tf2onnx = pytest.importorskip("tf2onnx")
    keras = pytest.importorskip("tf_keras")
    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="last")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    spec = (tf.TensorSpec((None, 48, 48, 3), tf.float32, name="input"),)
    src = tmp_path / "tf2onnx.onnx"
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=15, output_path=str(src))
    dst = tmp_path / "cam.onnx"
    report = import_onnx(src, dst)
    assert report.metadata.method == "cam" and report.metadata.activation == "softmax"
    images = _images(2, 48, 48)
    scores, cams = _run(dst, images)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    _close(e / e.sum(axis=1, keepdims=True), model.predict(images, verbose=0), 1e-4)
    features = keras.Model(inp, model.get_layer("last").output).predict(images, verbose=0)
    _close(cams, features @ model.layers[-1].get_weights()[0], 1e-4)


def test_fp16_and_external_data_sources(tmp_path: Path) -> None:
    from onnxconverter_common import float16

    src = pat.torchvision_resnet(tmp_path / "resnet.onnx", size=32)
    half = tmp_path / "half.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(str(src))), str(half))
    report = import_onnx(half, tmp_path / "from_half.onnx", ExportConfig(activation="softmax"))
    assert report.max_rel_error < 2e-2
    images = _images(1, 32, 32)
    scores16, _ = _run(tmp_path / "from_half.onnx", images)
    (logits,) = _run(src, np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    _close(scores16, logits, 2e-2)

    external = tmp_path / "ext" / "model.onnx"
    external.parent.mkdir()
    onnx.save(
        onnx.load(str(src)),
        str(external),
        save_as_external_data=True,
        location="w.bin",
        size_threshold=0,
    )
    out = tmp_path / "from_ext.onnx"
    import_onnx(external, out, ExportConfig(activation="softmax"))
    scores, _ = _run(out, images)
    _close(scores, logits)


def _fails(tmp_path: Path, src: Path, *extra: str) -> str:
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(get_app(), ["export", str(src), "-o", str(out), "-q", *extra])
    assert result.exit_code == 1, result.output
    assert not out.exists() and not list(tmp_path.glob(".out.onnx.*"))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01not a model" * 50)
    assert "is not a readable ONNX file" in _fails(tmp_path, junk)
    assert "no classifier head found" in _fails(tmp_path, pat.no_head(tmp_path / "n.onnx"))
    two = pat.two_heads(tmp_path / "two.onnx")
    assert "2 candidate heads" in _fails(tmp_path, two)
    assert "neither a tensor nor a node" in _fails(tmp_path, two, "--feature-node", "nope")
    old = pat.Builder(opset=11)
    old_path = old.model(
        "x", [1, 3, 8, 8], {"y": old.node("Relu", ["x"], "/r")}, tmp_path / "o.onnx"
    )
    assert "opset 11" in _fails(tmp_path, old_path)
    assert "three numbers" in _fails(tmp_path, two, "--mean", "1,2")


def test_feature_node_picks_one_of_two_heads(tmp_path: Path) -> None:
    from tests.export.onnx_patterns import Builder  # noqa: F401  (the patterns' own names)

    two = pat.two_heads(tmp_path / "two.onnx")
    features = "/layer2/0/relu/Relu_output_0"
    report = import_onnx(
        two, tmp_path / "a.onnx", ExportConfig(feature_node=features, activation="sigmoid")
    )
    assert report.metadata.feature_layer == features
    with pytest.raises(ExportError, match="2 candidate heads"):
        import_onnx(two, tmp_path / "b.onnx", ExportConfig(activation="sigmoid"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        import_onnx(tmp_path / "missing.onnx", tmp_path / "c.onnx")


def test_cli_export_then_run_with_tta(tmp_path: Path) -> None:
    """Real processes: a torchvision-pattern file through `cam-rt export`, `info`, `run --tta`."""
    src = pat.torchvision_resnet(tmp_path / "resnet.onnx", act="relu6")
    model = tmp_path / "cam.onnx"
    cam_rt = [sys.executable, "-m", "cam_rt.runtime.cli"]
    mean, std = ",".join(map(str, TORCH_MEAN)), ",".join(map(str, TORCH_STD))
    done = subprocess.run(
        [
            *cam_rt,
            "export",
            str(src),
            "-o",
            str(model),
            "--mean",
            mean,
            "--std",
            std,
            "--activation",
            "softmax",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "check" in done.stderr and "original" not in done.stderr  # logits: no activation row
    info = subprocess.run([*cam_rt, "info", str(model)], capture_output=True, text=True)
    assert info.returncode == 0 and "64x64" in info.stdout, info.stdout
    Image.fromarray(np.uint8(_images(1, 70, 90)[0])).save(tmp_path / "a.png")
    out = tmp_path / "out"
    run = subprocess.run(
        [
            *cam_rt,
            "run",
            str(model),
            str(tmp_path / "a.png"),
            "-o",
            str(out),
            "--tta",
            "-q",
            "--classes",
            "top-2",
            "--save",
            "overlay,maps",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    maps = np.load(out / "a.maps.npz")
    assert maps["maps"].shape[:2] == (70, 90)


def test_same_options_on_keras_export(tmp_path: Path) -> None:
    """--mean/--std/--bgr on a Keras model give the probabilities of preprocessing by hand."""
    keras = pytest.importorskip("keras")
    from cam_rt.export import export_model

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(inp)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    dst = tmp_path / "k.onnx"
    export_model(model, dst, ExportConfig(mean=(1.0, 2.0, 3.0), std=(50.0, 60.0, 70.0), bgr=True))
    images = _images(1, 33, 41)
    scores, _ = _run(dst, images)
    by_hand = (images[..., ::-1] - np.float32([1, 2, 3])) / np.float32([50, 60, 70])
    e = np.exp(scores - scores.max())
    _close(e / e.sum(), np.asarray(model(by_hand)), 1e-4)
    with pytest.raises(Exception, match="give one or the other"):
        ExportConfig(mean=(1.0, 2.0, 3.0), preprocess="torch")


def test_the_source_is_never_overwritten(tmp_path: Path) -> None:
    src = pat.torchvision_resnet(tmp_path / "m.onnx", size=32)
    before = src.read_bytes()
    assert "would be overwritten" in _fails(tmp_path, src, "-o", str(src))
    assert src.read_bytes() == before
    keras = pytest.importorskip("keras")
    inp = keras.Input((None, None, 3))
    out = keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    )
    source = tmp_path / "v.keras"
    keras.Model(inp, out).save(source)
    before = source.read_bytes()
    assert "would be overwritten" in _fails(tmp_path, source, "-o", str(source))
    assert source.read_bytes() == before
