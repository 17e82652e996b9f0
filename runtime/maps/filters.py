"""Map normalisations, per sample and per channel over the spatial axes.

Maps are NHWC: (N, H, W, C) or a single (H, W, C); the statistics run over H and W.
Source: keras-explainable ``filters`` (``normalize``, ``positive_normalize``) and OC-CSE's
``x / (max x + 1e-5)`` (its ``max_norm``, applied after a ReLU).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["max_normalize", "normalize", "positive_normalize"]


def _spatial_axes(maps: np.ndarray) -> tuple[int, int]:
    if maps.ndim == 4:
        return (1, 2)
    if maps.ndim == 3:
        return (0, 1)
    raise InputError(f"maps have shape {maps.shape}; expected (N, H, W, C) or (H, W, C)")


def normalize(maps: np.ndarray) -> np.ndarray:
    """``(x - min x) / max(x - min x)``; 0 where the range is 0 (divide-no-nan, no epsilon)."""
    x = np.asarray(maps, dtype=np.float32)
    axes = _spatial_axes(x)
    x = x - x.min(axis=axes, keepdims=True)
    peak = x.max(axis=axes, keepdims=True)
    out: np.ndarray = np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)
    return out


def positive_normalize(maps: np.ndarray) -> np.ndarray:
    """``normalize(relu(x))``: keras-explainable's default CAM filter.

    ``[[-1, 2], [3, .5]] -> [[0, .6667], [1, .1667]]``; all-negative or constant -> zeros.
    """
    return normalize(np.maximum(np.asarray(maps, dtype=np.float32), 0))


def max_normalize(maps: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """OC-CSE: ``x / (max x + eps)`` (no minimum subtracted; apply a ReLU before)."""
    x = np.asarray(maps, dtype=np.float32)
    axes = _spatial_axes(x)
    out: np.ndarray = x / (x.max(axis=axes, keepdims=True) + np.float32(eps))
    return out
