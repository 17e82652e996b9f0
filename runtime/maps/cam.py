"""Class activation maps from features and weights, and class selection. Pure NumPy.

``cam(A, W)[n, i, j, l] = sum_k A[n, i, j, k] * W[k, l]`` (no bias, no ReLU, no resize): the
keras-explainable ``cam`` at feature resolution (``methods.cams.cam``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["gather_classes", "probabilities", "weight_features"]


def weight_features(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """CAMs (N, h, w, L) from features (N, h, w, K) and CAM weights (K, L), float32."""
    if features.ndim != 4 or weights.ndim != 2 or features.shape[-1] != weights.shape[0]:
        raise InputError(
            f"features {features.shape} and CAM weights {weights.shape} do not fit: expected "
            "(N, h, w, K) and (K, L)"
        )
    out: np.ndarray = np.matmul(features.astype(np.float32, copy=False), weights.astype(np.float32))
    return out


def gather_classes(maps: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """The channels ``class_ids`` of one image's maps (..., L) -> (..., C)."""
    return np.take(maps, np.asarray(class_ids, dtype=np.intp), axis=-1)


def probabilities(scores: np.ndarray, activation: str) -> np.ndarray:
    """Sigmoid or softmax of pre-activation scores (..., L), float32."""
    s = np.asarray(scores, dtype=np.float64)
    if activation == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-s))
    elif activation == "softmax":
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
    else:
        raise InputError(f"activation '{activation}' is unknown: expected sigmoid or softmax")
    return p.astype(np.float32)
