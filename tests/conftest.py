"""Shared fixtures: tiny seeded Keras models, built here (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _keras() -> Any:
    pytest.importorskip("tensorflow")
    import keras

    return keras


def _randomize_bn(model: Any, seed: int) -> None:
    """Give BatchNorm layers non-trivial statistics so folding errors would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.uniform(-0.2, 0.2, beta.shape).astype("float32"),
                    rng.uniform(-0.1, 0.1, mean.shape).astype("float32"),
                    rng.uniform(0.5, 1.5, var.shape).astype("float32"),
                ]
            )


def build_gap_dense(activation: str = "softmax", classes: int = 5, seed: int = 1) -> Any:
    """Conv stack -> GAP -> Dropout -> Dense(activation): the classic CAM head."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    out = keras.layers.Dense(classes, activation=activation, name="head")(x)
    model = keras.Model(inp, out, name="gap_dense")
    _randomize_bn(model, seed)
    return model


def build_conv_head(classes: int = 4, seed: int = 2, dilation: int = 2) -> Any:
    """Conv stack with a dilated conv -> BN/ReLU -> 1x1 conv logits -> GAP -> sigmoid."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Activation("relu", name="ac1")(x)
    x = keras.layers.Conv2D(
        16, 3, dilation_rate=dilation, padding="same", use_bias=False, name="dilated"
    )(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Activation("relu", name="features")(x)
    x = keras.layers.Conv2D(classes, 1, use_bias=False, name="logits")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    out = keras.layers.Activation("sigmoid", name="predictions")(x)
    model = keras.Model(inp, out, name="conv_head")
    _randomize_bn(model, seed)
    return model


@pytest.fixture(scope="session")
def gap_dense_model() -> Any:
    return build_gap_dense()


@pytest.fixture(scope="session")
def conv_head_model() -> Any:
    return build_conv_head()


@pytest.fixture(scope="session")
def keras_file(tmp_path_factory: pytest.TempPathFactory, gap_dense_model: Any) -> Path:
    path = tmp_path_factory.mktemp("models") / "gap_dense.keras"
    gap_dense_model.save(path)
    return path


def images(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)


def run_onnx(path: Path, batch: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"images": batch}), strict=True))
