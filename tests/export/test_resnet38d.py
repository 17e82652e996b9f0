"""The built-in ResNet38-d: structure, and loading resnet38d-tf weight files by name."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from cam_rt.export import RESNET38D_PARAMS_20, ExportConfig, build_resnet38d, export_model
from cam_rt.export.resnet38d import load_resnet38d_weights, weight_names
from cam_rt.runtime.errors import ModelLoadError
from tests.conftest import images, run_onnx

h5py = pytest.importorskip("h5py")
pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")

# From lucasdavid/resnet38d-tf (Apache-2.0): Keras weight name, then the PyTorch name.
PARAM_NAMES = Path(__file__).resolve().parents[1] / "data" / "resnet38d.param_names"
WIDTH = 1 / 16  # same names and layout, 1/16 of the channels: fast to build, save and run


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_full_model_structure() -> None:
    model = build_resnet38d(20)
    assert model.count_params() == RESNET38D_PARAMS_20 == 105_200_576
    expected = [line.split()[0] for line in PARAM_NAMES.read_text().splitlines() if line.strip()]
    assert len(expected) == 192
    assert weight_names(model) == expected  # same names, same (topological) order
    assert model.get_layer("s5_ac").output.shape[-1] == 4096
    assert model.get_layer("logits").get_weights()[0].shape == (1, 1, 4096, 20)


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A Keras-2 HDF5 weights file written by tf_keras in the released files' layout."""
    tf_keras.utils.set_random_seed(0)
    legacy = build_resnet38d(20, width=WIDTH, keras_module=tf_keras, legacy_names=True)
    rng = np.random.default_rng(0)
    for layer in legacy.layers:
        if type(layer).__name__ == "BatchNormalization":
            g, b, m, v = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.8, 1.2, g.shape),
                    rng.uniform(-0.1, 0.1, b.shape),
                    rng.uniform(-0.1, 0.1, m.shape),
                    rng.uniform(0.8, 1.2, v.shape),
                ]
            )
    path = tmp_path_factory.mktemp("weights") / "resnet38d_small.h5"
    legacy.save_weights(str(path))
    return path, legacy


def test_legacy_file_layout(legacy_file: tuple[Path, Any]) -> None:
    path, _ = legacy_file
    with h5py.File(path, "r") as f:
        layer_names = [_s(n) for n in f.attrs["layer_names"]]
        assert "s5/ac" in layer_names and "s1/g0/b0/bn" in layer_names
        first = next(_s(n) for n in f["s1/g0/b0/bn"].attrs["weight_names"])
        assert first == "s1/g0/b0/bn/gamma:0"


def test_load_legacy_weights_into_keras3(legacy_file: tuple[Path, Any]) -> None:
    path, legacy = legacy_file
    model = build_resnet38d(20, width=WIDTH)
    load_resnet38d_weights(model, path)
    x = images(2, 67, 45, seed=1)
    x = (x / 255 - 0.45) / 0.225
    np.testing.assert_allclose(np.asarray(model(x)), legacy.predict(x, verbose=0), atol=1e-5)


def test_export_small_resnet38d(tmp_path: Path, legacy_file: tuple[Path, Any]) -> None:
    path, legacy = legacy_file
    model = build_resnet38d(20, width=WIDTH)
    load_resnet38d_weights(model, path)
    out = tmp_path / "r38_small.onnx"
    report = export_model(model, out, ExportConfig(preprocess="torch", classes="voc"))
    assert report.max_rel_error < 1e-4
    meta = report.metadata
    assert (meta.output_stride, meta.feature_layer, meta.score_layer) == (8, "s5_ac", "avg_pool")
    assert meta.class_names[0] == "aeroplane" and meta.activation == "sigmoid"
    graph = onnx.load(str(out)).graph
    ops = [n.op_type for n in graph.node]
    assert not set(ops) & {"SpaceToDepth", "DepthToSpace", "BatchToSpace", "Shape", "Pad"}
    dilations = {
        tuple(a.ints)
        for n in graph.node
        if n.op_type == "Conv"
        for a in n.attribute
        if a.name == "dilations"
    }
    assert {(1, 1), (2, 2), (4, 4)} <= dilations
    x = images(1, 97, 131, seed=8)
    got = run_onnx(out, x)
    assert got["cams"].shape == (1, 13, 17, 20)  # ceil(97/8), ceil(131/8)
    torch_x = (x / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    ref = legacy.predict(torch_x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(1 / (1 + np.exp(-got["scores"])), ref, atol=1e-5)


def _copy(path: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "edited.h5"
    shutil.copy(path, dst)
    return dst


def test_missing_weight(tmp_path: Path, legacy_file: tuple[Path, Any]) -> None:
    path = _copy(legacy_file[0], tmp_path)
    with h5py.File(path, "a") as f:
        group = f["s3/g2/b2/bn"]
        names = [
            _s(n).encode() for n in group.attrs["weight_names"] if not _s(n).endswith("beta:0")
        ]
        group.attrs["weight_names"] = names
    with pytest.raises(ModelLoadError, match=r"no weight 's3/g2/b2/bn/beta:0'"):
        load_resnet38d_weights(build_resnet38d(20, width=WIDTH), path)


def test_extra_weight(tmp_path: Path, legacy_file: tuple[Path, Any]) -> None:
    path = _copy(legacy_file[0], tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["layer_names"] = [_s(n).encode() for n in f.attrs["layer_names"]] + [b"s6/cv"]
        group = f.create_group("s6/cv")
        group.attrs["weight_names"] = [b"s6/cv/kernel:0"]
        group.create_dataset("s6/cv/kernel:0", data=np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(
        ModelLoadError, match=r"1 weight\(s\) the model does not, first 's6/cv/kernel:0'"
    ):
        load_resnet38d_weights(build_resnet38d(20, width=WIDTH), path)


def test_misshaped_weight_names_both_shapes(legacy_file: tuple[Path, Any]) -> None:
    model = build_resnet38d(21, width=WIDTH)
    with pytest.raises(
        ModelLoadError,
        match=r"'logits/kernel:0' has shape \(1, 1, 256, 20\) in .* expects \(1, 1, 256, 21\)"
        r".*20 classes, pass --classes with 20 names",
    ):
        load_resnet38d_weights(model, legacy_file[0])


def test_not_a_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not HDF5")
    with pytest.raises(ModelLoadError, match="not an HDF5 file"):
        load_resnet38d_weights(build_resnet38d(20, width=WIDTH), bad)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(ModelLoadError, match="not a Keras weights file"):
        load_resnet38d_weights(build_resnet38d(20, width=WIDTH), empty)
