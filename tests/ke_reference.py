"""keras-explainable's CAM, TTA and filters in TensorFlow, written from its
source (``methods.cams.cam``, ``methods.meta.tta``, ``filters``). keras-explainable itself needs Keras 2; this
is the parity reference for the runtime. Inputs are already preprocessed float images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf


def normalize(x: Any) -> Any:
    """(x - min) / max(x - min) over H, W per sample and channel; divide-no-nan."""
    x = x - tf.reduce_min(x, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(x, tf.reduce_max(x, axis=(1, 2), keepdims=True))


def positive_normalize(x: Any) -> Any:
    return normalize(tf.nn.relu(x))


def cam(model: Any, weights: np.ndarray, x: Any, indices: np.ndarray) -> tuple[Any, Any]:
    """``ke.methods.cams.cam``: exposed model -> (scores, features); maps = A . W gathered."""
    scores, features = model(x, training=False)
    maps = tf.einsum("bhwk,kl->bhwl", features, tf.constant(weights))
    indices = tf.convert_to_tensor(indices)
    scores = tf.gather(scores, indices, axis=-1, batch_dims=1)
    maps = tf.gather(maps, indices, axis=-1, batch_dims=1)
    return scores, maps


def explain_cam(model: Any, weights: np.ndarray, x: Any, indices: np.ndarray) -> Any:
    """``ke.cam``: CAM -> positive_normalize at feature resolution -> bilinear resize to (H, W)."""
    _, maps = cam(model, weights, x, indices)
    maps = positive_normalize(maps)
    return tf.image.resize(maps, tf.shape(x)[1:3], method="bilinear")


def tta(
    model: Any,
    weights: np.ndarray,
    x: Any,
    indices: np.ndarray,
    scales: Sequence[float],
    hflip: bool = True,
) -> tuple[Any, Any]:
    """``ke.methods.meta.tta(cam, scales, hflip)`` then ``positive_normalize``.

    The unscaled input and its flip always run, then each scale and its flip; input resized to
    (int(s*H), int(s*W)) bilinear; maps flipped back and resized to (H, W); sum / (len(scales)
    * (2 if hflip else 1)).
    """
    # Sizes in TensorFlow as keras-explainable computes them (float32 product, then int32), so
    # the function also runs inside a tf.function with dynamic H and W.
    hw = tf.shape(x)[1:3]
    total_scores, total_maps = 0.0, 0.0
    for s in [1.0, *scales]:
        for flip in (False, True) if hflip else (False,):
            xi = tf.image.flip_left_right(x) if flip else x
            size = tf.cast(tf.constant(s, tf.float32) * tf.cast(hw, tf.float32), tf.int32)
            if s != 1.0:  # a same-size bilinear resize is the identity
                xi = tf.image.resize(xi, size, method="bilinear")
            scores, maps = cam(model, weights, xi, indices)
            if flip:
                maps = tf.image.flip_left_right(maps)
            maps = tf.image.resize(maps, hw, method="bilinear")
            total_scores += scores
            total_maps += maps
    divisor = len(scales) * (2 if hflip else 1)
    return total_scores / divisor, positive_normalize(total_maps / divisor)


def compiled(
    model: Any,
    weights: np.ndarray,
    preprocess: Any,
    scales: Sequence[float] | None = None,
    hflip: bool = True,
) -> Any:
    """The TensorFlow way, compiled: a ``tf.function`` over any (N, H, W, 3) float32 batch of
    0..255 images that preprocesses, runs the model and returns every class's normalized maps
    (``ke.cam`` without TTA, ``ke.methods.meta.tta`` + ``positive_normalize`` with ``scales``).
    ``preprocess`` maps a float32 tensor to the model's input (e.g. ``x / 255`` ...)."""
    classes = int(weights.shape[1])

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def explain(x: Any) -> Any:
        x = preprocess(x)
        indices = tf.tile(tf.range(classes)[None], [tf.shape(x)[0], 1])
        if scales is None:
            return explain_cam(model, weights, x, indices)
        return tta(model, weights, x, indices, scales, hflip)[1]

    return explain
