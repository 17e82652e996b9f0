"""Bad input to the export: a cam-rt error with an actionable message, and no file left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cam_rt.export import ExportConfig, export_model
from cam_rt.runtime.errors import (
    ConfigError,
    ExportError,
    MissingDependencyError,
    ModelLoadError,
)
from tests.conftest import build_conv_head

pytest.importorskip("tensorflow")
import keras


def _nothing_written(folder: Path) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.suffix in (".onnx", ".tmp")]
    assert leftovers == [], leftovers


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_missing_file(out_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"'missing\.keras' does not exist"):
        export_model("missing.keras", out_dir / "m.onnx")
    _nothing_written(out_dir)


def test_unknown_architecture(out_dir: Path) -> None:
    with pytest.raises(
        ModelLoadError, match=r"'resnet50' does not exist.*built-in name \(resnet38d\)"
    ):
        export_model("resnet50", out_dir / "m.onnx")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.keras", b"garbage", r"Keras cannot load .*broken\.keras"),
        ("broken.h5", b"garbage", r"cannot read .*broken\.h5: not an HDF5 file"),
        ("model.pt", b"garbage", r"unknown type '\.pt'"),
    ],
)
def test_unreadable_files(
    tmp_path: Path, out_dir: Path, name: str, content: bytes, message: str
) -> None:
    src = tmp_path / name
    src.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        export_model(src, out_dir / "m.onnx")
    _nothing_written(out_dir)


def test_weights_only_h5_as_source(tmp_path: Path, out_dir: Path, conv_head_model: Any) -> None:
    src = tmp_path / "only.weights.h5"
    conv_head_model.save_weights(src)
    with pytest.raises(ModelLoadError, match="holds weights only.*--weights"):
        export_model(src, out_dir / "m.onnx")


def test_saved_model_without_keras(tmp_path: Path, out_dir: Path) -> None:
    import tensorflow as tf

    folder = tmp_path / "plain_saved_model"
    tf.saved_model.save(tf.Module(), str(folder))
    with pytest.raises(ModelLoadError, match="holds no Keras model"):
        export_model(folder, out_dir / "m.onnx")


def test_layer_not_found_lists_closest(out_dir: Path, conv_head_model: Any) -> None:
    with pytest.raises(
        ExportError, match=r"feature layer 'featurs' is not a layer .*closest: features"
    ):
        export_model(conv_head_model, out_dir / "m.onnx", ExportConfig(feature_layer="featurs"))
    _nothing_written(out_dir)


def test_no_global_pooling(out_dir: Path) -> None:
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    out = keras.layers.Conv2D(2, 1, activation="sigmoid")(x)
    model = keras.Model(inp, out)
    with pytest.raises(ExportError, match="no global pooling.*--feature-layer"):
        export_model(model, out_dir / "m.onnx")


def test_multiple_inputs(out_dir: Path) -> None:
    a, b = keras.Input((None, None, 3)), keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3)(keras.layers.Add()([a, b]))
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ExportError, match="has 2 inputs"):
        export_model(keras.Model([a, b], out), out_dir / "m.onnx")


def test_non_image_input(out_dir: Path) -> None:
    inp = keras.Input((10,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    with pytest.raises(ExportError, match=r"shape \(None, 10\); expected an image batch"):
        export_model(model, out_dir / "m.onnx")


def test_wrong_channel_count(out_dir: Path) -> None:
    inp = keras.Input((None, None, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    with pytest.raises(ExportError, match="has 1 channels.*expected 3"):
        export_model(keras.Model(inp, keras.layers.Dense(2)(x)), out_dir / "m.onnx")


def test_activation_cannot_be_read(out_dir: Path) -> None:
    inp = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(x))
    with pytest.raises(ConfigError, match="pass --activation sigmoid"):
        export_model(model, out_dir / "m.onnx")
    export_model(model, out_dir / "m.onnx", ExportConfig(activation="sigmoid"))
    assert (out_dir / "m.onnx").is_file()


def test_class_count_mismatch(out_dir: Path, conv_head_model: Any) -> None:
    with pytest.raises(ConfigError, match="20 class names .* model has 4 classes"):
        export_model(conv_head_model, out_dir / "m.onnx", ExportConfig(classes="voc"))


def test_weights_for_a_model_file(out_dir: Path, keras_file: Path) -> None:
    with pytest.raises(ConfigError, match="--weights applies to built-in"):
        export_model(keras_file, out_dir / "m.onnx", ExportConfig(weights="x.h5"))


def test_builtin_needs_weights(out_dir: Path) -> None:
    with pytest.raises(ConfigError, match="needs --weights"):
        export_model("resnet38d", out_dir / "m.onnx")
    with pytest.raises(ModelLoadError, match="weights file 'nope.h5' does not exist"):
        export_model("resnet38d", out_dir / "m.onnx", ExportConfig(weights="nope.h5"))


def test_output_not_writable(tmp_path: Path, keras_file: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create the output folder"):
        export_model(keras_file, blocker / "m.onnx")
    with pytest.raises(ConfigError, match="is a folder"):
        export_model(keras_file, tmp_path)
    with pytest.raises(ConfigError, match="cannot write to /proc"):
        export_model(keras_file, "/proc/cam-rt-test.onnx")


def test_failed_check_leaves_nothing(out_dir: Path, conv_head_model: Any) -> None:
    target = out_dir / "m.onnx"
    target.write_bytes(b"previous good file")
    with pytest.raises(ExportError, match="does not match Keras.*no file was written"):
        export_model(conv_head_model, target, ExportConfig(tolerance=1e-15))
    assert target.read_bytes() == b"previous good file"  # the old file is untouched
    assert [p.name for p in out_dir.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": "maps"}, "output 'maps' is unknown"),
        ({"activation": "relu"}, "activation 'relu' is unknown"),
        ({"preprocess": "imagenet"}, "preprocess 'imagenet' is unknown"),
        ({"opset": 9}, "opset 9 is out of range"),
        ({"check_sizes": ()}, "fewer than 2 sizes"),
        ({"check_sizes": ((97, 131),)}, "fewer than 2 sizes"),
        ({"check_sizes": ((97, 131), (4, 100))}, r"check size \(4, 100\) is invalid"),
        ({"check_sizes": (97, 131)}, r"check size 97 is invalid"),
        ({"opset": "17"}, "opset '17' must be an integer"),
        ({"tolerance": 0.0}, "tolerance 0.0 must be a positive"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExportConfig(**kwargs)


def test_tensorflow_missing_message(tmp_path: Path) -> None:
    """Without TensorFlow, `cam-rt export` says which extra to install, in one line, exit 1."""
    out = tmp_path / "m.onnx"
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "from cam_rt.runtime.cli import main\n"
        f"main(['export', 'resnet38d', '--weights', 'none', '-o', {str(out)!r}])\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "cam-rt: error: exporting a Keras model needs the 'tensorflow' package, which is not "
        "installed: pip install 'cam-rt[export]'"
    ]
    assert not out.exists()


def test_missing_dependency_is_import_error() -> None:
    err = MissingDependencyError("tensorflow", "export", "exporting")
    assert isinstance(err, ImportError)
    assert str(err) == (
        "exporting needs the 'tensorflow' package, which is not installed: "
        "pip install 'cam-rt[export]'"
    )


def test_dilated_model_still_exports_after_failure(out_dir: Path) -> None:
    """A failed export restores the model: a second export of the same object works."""
    model = build_conv_head(seed=5)
    with pytest.raises(ExportError):
        export_model(model, out_dir / "a.onnx", ExportConfig(tolerance=1e-15))
    assert not hasattr(model.get_layer("dilated"), "__dict__") or (
        "convolution_op" not in vars(model.get_layer("dilated"))
    )
    export_model(model, out_dir / "b.onnx")
    assert (out_dir / "b.onnx").is_file()
