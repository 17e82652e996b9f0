"""Every kind of SOURCE the export takes: .keras, .h5 (Keras 3, tf_keras), SavedModel, objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from cam_rt.export import ExportConfig, export_model
from cam_rt.runtime.metadata import ModelMetadata
from tests.conftest import images, run_onnx

pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")
# Writing the legacy formats is the point of these tests; their deprecation notes are not.
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are saving your model as an HDF5 file:UserWarning"
)


def build_legacy_model(seed: int = 3) -> Any:
    """A tf_keras model with '/' in its layer names, like the released resnet38d-tf files."""
    tf_keras.utils.set_random_seed(seed)
    layers = tf_keras.layers
    inp = tf_keras.Input((None, None, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="s0/g0/cv")(inp)
    x = layers.BatchNormalization(name="s1/bn")(x)
    x = layers.Activation("relu", name="s1/ac")(x)
    x = layers.Conv2D(16, 3, dilation_rate=2, padding="same", use_bias=False, name="s5/cv")(x)
    x = layers.Activation("relu", name="s5/ac")(x)
    x = layers.Conv2D(3, 1, use_bias=False, name="logits")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    out = layers.Activation("sigmoid", name="predictions")(x)
    return tf_keras.Model(inp, out)


@pytest.fixture(scope="module")
def legacy_model() -> Any:
    return build_legacy_model()


def _check(path: Path, reference: Any, feature_layer: str) -> ModelMetadata:
    model = onnx.load(str(path))
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
    x = images(2, 51, 37, seed=4)
    got = run_onnx(path, x)
    np.testing.assert_allclose(1 / (1 + np.exp(-got["scores"])), reference(x), atol=1e-5)
    assert meta.feature_layer == feature_layer
    return meta


def test_tf_keras_object_with_slash_names(tmp_path: Path, legacy_model: Any) -> None:
    out = tmp_path / "legacy.onnx"
    report = export_model(legacy_model, out)
    assert report.max_rel_error < 1e-5
    meta = _check(out, legacy_model, "s5/ac")
    assert meta.producer.get("tf_keras")
    assert not {n.op_type for n in onnx.load(str(out)).graph.node} & {"SpaceToDepth", "Shape"}


def test_tf_keras_h5_file(tmp_path: Path, legacy_model: Any) -> None:
    src = tmp_path / "legacy.h5"
    legacy_model.save(src)
    out = tmp_path / "legacy_h5.onnx"
    report = export_model(src, out, ExportConfig(feature_layer="s5/ac", score_layer="avg_pool"))
    assert "tf_keras" in report.metadata.source
    _check(out, legacy_model, "s5/ac")


def test_tf_keras_saved_model(tmp_path: Path, legacy_model: Any) -> None:
    src = tmp_path / "saved"
    legacy_model.save(src, save_format="tf")
    out = tmp_path / "saved.onnx"
    export_model(src, out)
    _check(out, legacy_model, "s5/ac")


def test_keras3_h5_file(tmp_path: Path, gap_dense_model: Any) -> None:
    src = tmp_path / "k3.h5"
    gap_dense_model.save(src)
    out = tmp_path / "k3.onnx"
    report = export_model(src, out)
    assert report.metadata.source == "k3.h5"
    x = images(1, 64, 64, seed=2)
    got = run_onnx(out, x)
    e = np.exp(got["scores"] - got["scores"].max())
    np.testing.assert_allclose(e / e.sum(), gap_dense_model(x), atol=1e-6)
