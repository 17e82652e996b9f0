"""keras.applications classifiers as users build them: export, compare with Keras, run.

The default suite exports four reduced architectures chosen to cover a fixed-size rebuild
(MobileNetV2 at 96x96), a Grad-CAM head (MobileNetV3Small: GAP -> 1x1 conv -> hard-swish ->
1x1 conv), a Flatten head exported at its trained size (VGG16) and Gelu/LayerNorm
(ConvNeXtTiny). ``-m zoo`` exports all ten at their default sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from cam_rt.runtime.metadata import ModelMetadata
from tests.conftest import images, run_onnx

pytest.importorskip("tensorflow")

DEFAULT = {
    # name: (fixed-size file, method)
    "MobileNetV2": (False, "cam"),
    "MobileNetV3Small": (False, "grad-cam"),
    "VGG16": (True, "grad-cam"),
    "ConvNeXtTiny": (False, "grad-cam"),
}


def _export_and_check(name: str, reduced: bool, tmp_path: Path) -> ModelMetadata:
    from cam_rt.export import ExportConfig, export_model
    from cam_rt.export.zoo import ZOO, build

    model = build(name, reduced=reduced)
    out = tmp_path / f"{name}.onnx"
    report = export_model(model, out, ExportConfig(preprocess=ZOO[name].preprocess))
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert report.max_rel_error < 1e-3
    dims = tuple(model.inputs[0].shape[1:3])
    trained = None if None in dims else (int(dims[0]), int(dims[1]))
    sizes = {(p.height, p.width) for p in report.parity}
    if trained is not None:
        assert meta.input_size == trained and trained in sizes
    if not meta.fixed_size:
        assert len(sizes) == 2  # checked at the trained size and at another one
    # Independently of the export's own check: ONNX Runtime vs the user's Keras model.
    size = meta.input_size or (160, 224)
    x = images(2, *size, seed=9)
    got = run_onnx(out, x)
    pre = meta.preprocessing.apply(x)
    probs = 1 / (1 + np.exp(-got["scores"].astype(np.float64)))
    np.testing.assert_allclose(probs, np.asarray(model(pre, training=False)), atol=2e-5)
    assert got["cams"].shape[-1] == 20 and np.isfinite(got["cams"]).all()
    return meta


@pytest.mark.parametrize("name", sorted(DEFAULT))
def test_reduced_architecture_exports(name: str, tmp_path: Path) -> None:
    meta = _export_and_check(name, True, tmp_path)
    assert (meta.fixed_size, meta.method) == DEFAULT[name]


@pytest.mark.zoo
@pytest.mark.parametrize(
    "name",
    [
        "MobileNetV2",
        "ResNet50",
        "EfficientNetB0",
        "DenseNet121",
        "ConvNeXtTiny",
        "Xception",
        "MobileNetV3Small",
        "InceptionV3",
        "NASNetMobile",
        "VGG16",
    ],
)
def test_full_architecture_exports(name: str, tmp_path: Path) -> None:
    _export_and_check(name, False, tmp_path)
