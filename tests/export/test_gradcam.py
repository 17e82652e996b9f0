"""Exported Grad-CAM vs a ``tf.GradientTape`` Grad-CAM of the same Keras model, per head kind.

The reference is the textbook Grad-CAM (Selvaraju et al.): weights = the gradient of the class
score with respect to the feature maps, averaged over positions; map = sum_k weight_k * A_k.
cam-rt's maps are that times h*w (the gradient summed over positions), before any ReLU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from cam_rt.runtime.maps.filters import positive_normalize
from cam_rt.runtime.metadata import ModelMetadata
from tests.conftest import images, run_onnx

pytest.importorskip("tensorflow")
import keras
import tensorflow as tf

L = keras.layers


def _body(inp: Any) -> Any:
    x = L.Rescaling(1 / 64.0)(inp)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(x)
    return L.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="features")(x)


def mlp_head(inp: Any) -> Any:  # GAP -> Dense(relu) -> Dropout -> Dense
    x = L.GlobalAveragePooling2D()(_body(inp))
    x = L.Dropout(0.2)(L.Dense(16, activation="relu")(x))
    return L.Dense(4, name="logits")(x)


def mobilenet_v3_head(inp: Any) -> Any:  # GAP(keepdims) -> 1x1 -> hard_swish -> 1x1 -> Flatten
    x = L.GlobalAveragePooling2D(keepdims=True)(_body(inp))
    x = L.Activation("hard_swish")(L.Conv2D(16, 1)(x))
    return L.Flatten(name="logits")(L.Conv2D(4, 1)(L.Dropout(0.2)(x)))


def convnext_head(inp: Any) -> Any:  # GAP -> LayerNorm -> Dense(gelu) -> Dense
    x = L.LayerNormalization(epsilon=1e-6)(L.GlobalAveragePooling2D()(_body(inp)))
    return L.Dense(4, name="logits")(L.Dense(16, activation="gelu")(x))


def gmp_head(inp: Any) -> Any:  # GMP -> BN -> Dense(swish) -> Dense(tanh) -> Dense
    x = L.BatchNormalization()(L.GlobalMaxPooling2D()(_body(inp)))
    x = L.Dense(8, activation="tanh")(L.Dense(16, activation="swish")(x))
    return L.Dense(4, name="logits")(x)


def flatten_head(inp: Any) -> Any:  # Flatten -> Dense(relu) -> Dense (VGG)
    x = L.Dense(16, activation="relu")(L.Flatten()(_body(inp)))
    return L.Dense(4, name="logits")(x)


def linear_head(inp: Any) -> Any:  # GAP -> Dense: Grad-CAM = CAM
    return L.Dense(4, name="logits")(L.GlobalAveragePooling2D()(_body(inp)))


HEADS: dict[str, tuple[Callable[[Any], Any], tuple[int | None, int | None], str]] = {
    "mlp": (mlp_head, (None, None), "grad-cam"),
    "mobilenet_v3": (mobilenet_v3_head, (None, None), "grad-cam"),
    "convnext": (convnext_head, (None, None), "grad-cam"),
    "gmp": (gmp_head, (None, None), "grad-cam"),
    "flatten": (flatten_head, (48, 64), "grad-cam"),
    "linear": (linear_head, (None, None), "cam"),
}


def _model(name: str) -> Any:
    head, size, _ = HEADS[name]
    keras.utils.set_random_seed(3)
    inp = keras.Input((*size, 3))
    logits = head(inp)
    model = keras.Model(inp, L.Activation("sigmoid")(logits), name=name)
    for layer in model.layers:  # non-trivial BatchNorm statistics
        if isinstance(layer, L.BatchNormalization):
            rng = np.random.default_rng(0)
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    return model


def tape_grad_cam(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, h, w, L) textbook Grad-CAM (no ReLU) and (N, L) logits, by GradientTape."""
    grad_model = keras.Model(
        model.inputs[0], [model.get_layer("features").output, model.get_layer("logits").output]
    )
    maps = []
    with tf.GradientTape(persistent=True) as tape:
        features, logits = grad_model(x, training=False)
        classes = [logits[:, c] for c in range(logits.shape[1])]
    for score in classes:
        grads = tape.gradient(score, features)  # (N, h, w, K)
        weights = tf.reduce_mean(grads, axis=(1, 2))  # (N, K)
        maps.append(tf.einsum("nhwk,nk->nhw", features, weights))
    return np.stack([np.asarray(m) for m in maps], axis=-1), np.asarray(logits)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_grad_cam_matches_gradient_tape(name: str, tmp_path: Path) -> None:
    from cam_rt.export import export_model

    model = _model(name)
    out = tmp_path / f"{name}.onnx"
    export_model(model, out)
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert meta.method == HEADS[name][2]
    size = HEADS[name][1]
    x = images(2, size[0] or 75, size[1] or 99, seed=7)
    got = run_onnx(out, x)
    ref, logits = tape_grad_cam(model, x)
    h, w = ref.shape[1:3]
    np.testing.assert_allclose(got["scores"], logits, atol=1e-4, rtol=1e-4)
    span = float(np.abs(ref).max())
    assert span > 0
    np.testing.assert_allclose(got["cams"], ref * (h * w), atol=1e-4 * span * h * w, rtol=0)
    # After the same normalisation (ReLU, then min-max per class) the maps agree within 1e-4.
    mine = positive_normalize(got["cams"])
    theirs = positive_normalize(ref.astype(np.float32))
    assert float(np.abs(mine - theirs).max()) < 1e-4


def test_linear_head_grad_cam_is_cam_times_positive_factor(tmp_path: Path) -> None:
    """For GAP -> Dense, Grad-CAM = CAM / (h w): the same maps up to a positive factor."""
    from cam_rt.export import export_model

    model = _model("linear")
    export_model(model, tmp_path / "m.onnx")
    x = images(1, 64, 80, seed=2)
    got = run_onnx(tmp_path / "m.onnx", x)
    ref, _ = tape_grad_cam(model, x)
    kernel = model.get_layer("logits").get_weights()[0]
    features = np.asarray(keras.Model(model.inputs[0], model.get_layer("features").output)(x))
    cam = features @ kernel
    h, w = cam.shape[1:3]
    np.testing.assert_allclose(ref, cam / (h * w), atol=1e-6, rtol=1e-4)
    np.testing.assert_allclose(got["cams"], cam, atol=1e-4, rtol=1e-4)
