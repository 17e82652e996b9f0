"""Models users have: fixed input sizes, fine-tuning on a nested base, nested classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from cam_rt.export import ExportConfig, export_model
from cam_rt.runtime.errors import ExportError
from cam_rt.runtime.metadata import ModelMetadata
from tests.conftest import images, run_onnx

pytest.importorskip("tensorflow")
# Writing the legacy .h5 format is the point of some tests; its deprecation note is not.
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are saving your model as an HDF5 file:UserWarning"
)


def _meta(path: Path) -> ModelMetadata:
    return ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props})


def _input_dims(path: Path) -> list[Any]:
    (inp,) = onnx.load(str(path)).graph.input
    return [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]


def fine_tuned(module: Any, size: int = 96) -> Any:
    """The usual transfer-learning model: Input -> MobileNetV2 base -> GAP -> Dropout -> Dense."""
    module.utils.set_random_seed(5)
    base = module.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=None, alpha=0.35
    )
    inp = module.Input((size, size, 3))
    x = module.layers.GlobalAveragePooling2D()(base(inp, training=False))
    x = module.layers.Dropout(0.2)(x)
    return module.Model(inp, module.layers.Dense(3, activation="sigmoid")(x), name="fine_tuned")


def _check_against(model: Any, path: Path, size: tuple[int, int]) -> dict[str, np.ndarray]:
    x = images(2, *size, seed=3)
    got = run_onnx(path, x)
    probs = 1 / (1 + np.exp(-got["scores"]))
    np.testing.assert_allclose(probs, np.asarray(model(x / 127.5 - 1.0)), atol=1e-5)
    return got


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_fine_tuned_file_exports_for_any_size(tmp_path: Path, suffix: str) -> None:
    import keras

    model = fine_tuned(keras)
    src = tmp_path / f"ft{suffix}"
    model.save(src)
    out = tmp_path / "ft.onnx"
    report = export_model(src, out, ExportConfig(preprocess="tf"))
    meta = _meta(out)
    assert (meta.input_size, meta.fixed_size, meta.method) == ((96, 96), False, "cam")
    assert meta.feature_layer.endswith("/out_relu") and meta.output_stride == 32
    assert _input_dims(out) == ["batch", "height", "width", 3]
    assert {(p.height, p.width) for p in report.parity} == {(96, 96), (121, 145)}
    _check_against(model, out, (96, 96))
    got = run_onnx(out, images(1, 131, 70))  # any size: the maps follow the input
    # Five stride-2 valid convs, each after the (0, 1) padding fixed at 96 px: 131 -> 65 -> 32
    # -> 16 -> 8 -> 4 and 70 -> 35 -> 17 -> 8 -> 4 -> 2.
    assert got["cams"].shape == (1, 4, 2, 3)


def test_tf_keras_fine_tuned_h5(tmp_path: Path) -> None:
    from cam_rt.export._deps import import_tf_keras

    tf_keras = import_tf_keras()
    model = fine_tuned(tf_keras, size=64)
    src = tmp_path / "ft2.h5"
    model.save(src)
    out = tmp_path / "ft2.onnx"
    export_model(src, out, ExportConfig(preprocess="tf"))
    assert _meta(out).input_size == (64, 64) and not _meta(out).fixed_size
    _check_against(model, out, (64, 64))


def test_flatten_head_exports_at_its_trained_size(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((40, 56, 3))
    x = keras.layers.Conv2D(6, 3, strides=4, padding="same", activation="relu", name="maps")(inp)
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(x))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    out = tmp_path / "flat.onnx"
    report = export_model(model, out)
    meta = _meta(out)
    assert (meta.input_size, meta.fixed_size, meta.method) == ((40, 56), True, "grad-cam")
    assert _input_dims(out) == ["batch", 40, 56, 3]
    assert {(p.batch, p.height, p.width) for p in report.parity} == {(1, 40, 56), (2, 40, 56)}
    x = images(3, 40, 56)
    got = run_onnx(out, x)
    e = np.exp(got["scores"] - got["scores"].max(1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), np.asarray(model(x)), atol=1e-5)
    assert got["cams"].shape == (3, 10, 14, 2)


def test_whole_classifier_nested_and_layer_paths(tmp_path: Path) -> None:
    """A model whose only layer is the classifier (a nested Functional); paths name layers."""
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(5, 3, strides=2, activation="relu", name="maps")(inp)
    x = keras.layers.Conv2D(7, 3, strides=2, activation="relu", name="top")(x)
    inner = keras.Model(
        inp, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)), name="inner"
    )
    outer_in = keras.Input((None, None, 3))
    outer = keras.Model(outer_in, keras.layers.Activation("sigmoid")(inner(outer_in)))
    out = tmp_path / "nested.onnx"
    export_model(outer, out)
    meta = _meta(out)
    assert (meta.feature_layer, meta.activation, meta.input_size) == ("inner/top", "sigmoid", None)
    x = images(2, 50, 70)
    got = run_onnx(out, x)
    features = np.asarray(keras.Model(inp, inner.get_layer("top").output)(x))
    kernel = inner.layers[-1].get_weights()[0]
    np.testing.assert_allclose(got["cams"], features @ kernel, atol=1e-4)
    # An explicit path to a layer further back is refused when a non-linear layer is between.
    with pytest.raises(ExportError, match=r"layer 'inner/top' \(Conv2D\) sits between"):
        export_model(outer, tmp_path / "x.onnx", ExportConfig(feature_layer="inner/maps"))
    assert not (tmp_path / "x.onnx").exists()


def test_unsupported_head_layer_is_named(tmp_path: Path) -> None:
    import keras

    inp = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    x = keras.layers.Dense(6, activation="elu", name="odd")(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="sigmoid")(x))
    with pytest.raises(
        ExportError, match=r"head layer 'odd' \(Dense\) applies the activation 'elu'"
    ):
        export_model(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_repeated_class_names_are_kept(tmp_path: Path) -> None:
    from tests.conftest import build_gap_dense

    names = tmp_path / "names.txt"
    names.write_text("crane\ncat\ncrane\ndog\nmaillot\n")
    lines: list[str] = []
    out = tmp_path / "m.onnx"
    export_model(build_gap_dense(), out, ExportConfig(classes=str(names)), log=lines.append)
    assert _meta(out).class_names == ("crane", "cat", "crane", "dog", "maillot")
    assert sum("class names repeat (crane)" in line for line in lines) == 1


def test_cli_fixed_size_model_end_to_end(tmp_path: Path) -> None:
    """Real processes: export a fixed-size .keras, info shows it, run resizes to it."""
    import json
    import subprocess
    import sys

    import keras
    from PIL import Image

    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 64, 3))
    x = keras.layers.Conv2D(6, 3, strides=4, padding="same", activation="relu")(inp)
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(x))
    keras.Model(inp, keras.layers.Dense(3, activation="sigmoid")(x)).save(tmp_path / "f.keras")
    Image.fromarray(images(1, 120, 90)[0].astype(np.uint8)).save(tmp_path / "a.png")
    cam_rt = [sys.executable, "-m", "cam_rt.runtime.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cam_rt, *args], capture_output=True, text=True, check=False)

    model = str(tmp_path / "f.onnx")
    done = run("export", str(tmp_path / "f.keras"), "-o", model, "-q")
    assert done.returncode == 0, done.stderr
    info = run("info", model).stdout
    assert "48x64, fixed" in info and "grad-cam" in info
    refused = run("run", model, str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--tta")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"cam-rt: error: {model} takes only 48x64 inputs (its head needs that size): "
        "TTA scales need a dynamic-size export; pass --scales 1"
    ]
    out = tmp_path / "o"
    ok = run("run", model, str(tmp_path / "a.png"), "-o", str(out), "--tta", "--scales", "1")
    assert ok.returncode == 0, ok.stderr
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert record["size"] == [120, 90]
    with np.load(out / "a.maps.npz") as maps:  # maps at the image's own resolution
        assert maps["maps"].shape[:2] == (120, 90)
