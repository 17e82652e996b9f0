"""Test-time augmentation: which passes to run, how to resize inputs, how to merge the maps.

Pure arrays; the model run itself is not here. Three modes
(``shared/reference/semantics.md`` section 5):

- ``keras-explainable`` (5.1, exact parity with ``ke.methods.meta.tta``): the unscaled input and
  its flip are always run, then every listed scale and its flip; inputs resized bilinear (no
  antialias) to ``(int(s*H), int(s*W))``; raw maps flipped back, resized bilinear to (H, W),
  summed and divided by ``len(scales) * (2 if flip else 1)``; ``positive_normalize`` at the end.
- ``occse`` (5.2, OC-CSE's evaluation): each scale and its flip; the uint8 image resized
  bicubic with antialiasing (Pillow) to ``round(s*W), round(s*H)`` (half to even); each pass's map
  resized bilinear to (H, W), ReLU, flipped back; summed; ``x / (max x + 1e-5)`` per class.
  The label mask is the class selection: only the chosen classes' maps are kept.
- ``mean`` (5.3, the default): each distinct (scale, flip) pass once, inputs resized with area
  averaging when shrinking and bilinear when enlarging (round half to even), raw maps resized to
  (H, W) and averaged, then ``positive_normalize``.

No TTA (``config is None``): keras-explainable's ``cam``: ``positive_normalize`` at feature
resolution, then bilinear resize to (H, W).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .errors import ConfigError
from .filters import max_normalize, positive_normalize

__all__ = [
    "TTA_MODES",
    "Pass",
    "TTAConfig",
    "bucket_size",
    "combine_maps",
    "combine_scores",
    "input_size",
    "plan_passes",
    "resize_input",
    "resize_maps",
]

TTAMode = Literal["mean", "keras-explainable", "occse"]
TTA_MODES: tuple[str, ...] = ("mean", "keras-explainable", "occse")
CV2_MAX_CHANNELS = 128  # OpenCV 5 resizes at most 128 channels at once (4.x: 512)


@dataclass(frozen=True, slots=True)
class TTAConfig:
    """Scales and horizontal flip for test-time augmentation (``--scales``, ``--flip``)."""

    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    flip: bool = True
    mode: TTAMode = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.scales, (str, bytes)) or not isinstance(self.scales, Iterable):
            raise ConfigError(
                f"scales {self.scales!r} must be a sequence of numbers, e.g. (0.5, 1)"
            )
        scales = tuple(self.scales)
        if not scales:
            raise ConfigError("scales is empty: give at least one scale, e.g. --scales 1")
        for s in scales:
            ok = isinstance(s, numbers.Real) and not isinstance(s, bool)
            if not (ok and math.isfinite(float(s)) and float(s) > 0):
                raise ConfigError(
                    f"scale {s!r} is invalid: scales must be positive numbers, e.g. 0.5,1,1.5,2"
                )
        object.__setattr__(self, "scales", tuple(float(s) for s in scales))
        if self.mode not in TTA_MODES:
            modes = ", ".join(TTA_MODES)
            raise ConfigError(f"TTA mode '{self.mode}' is unknown: use one of {modes}")


@dataclass(frozen=True, slots=True)
class Pass:
    """One forward pass: the input scaled by ``scale`` and mirrored if ``flip``."""

    scale: float
    flip: bool


def plan_passes(config: TTAConfig | None) -> tuple[Pass, ...]:
    """The passes of a TTA config, flipped twins adjacent (they run in one batch)."""
    if config is None:
        return (Pass(1.0, False),)
    flips = (False, True) if config.flip else (False,)
    if config.mode == "keras-explainable":
        scales: Sequence[float] = (1.0, *config.scales)  # the unscaled passes always run
    else:
        scales = list(dict.fromkeys(float(s) for s in config.scales))  # distinct, in order
    return tuple(Pass(float(s), f) for s in scales for f in flips)


def bucket_size(height: int, width: int, bucket: int) -> tuple[int, int]:
    """(h, w) rounded to the nearest multiple of ``bucket`` (halves up), at least one bucket;
    unchanged when ``bucket`` is 0 (off)."""
    if not isinstance(bucket, int) or isinstance(bucket, bool) or bucket < 0:
        raise ConfigError(f"bucket {bucket!r} must be an integer >= 0 (0: off)")
    if bucket == 0:
        return height, width

    def one(v: int) -> int:
        return max(bucket, bucket * math.floor(v / bucket + 0.5))

    return one(height), one(width)


def input_size(
    height: int, width: int, scale: float, mode: str | None, bucket: int = 0
) -> tuple[int, int]:
    """(h, w) of an input scaled by ``scale``: truncation for keras-explainable, else round
    half to even (Python's ``round``); at least 1 pixel; then rounded to ``bucket`` if set."""
    if mode == "keras-explainable":  # tf.cast(float32 scale * float32 size, int32)
        h = int(np.float32(scale) * np.float32(height))
        w = int(np.float32(scale) * np.float32(width))
    else:
        h, w = round(scale * height), round(scale * width)
    return bucket_size(max(1, h), max(1, w), bucket)


def resize_input(image: np.ndarray, p: Pass, mode: str | None, bucket: int = 0) -> np.ndarray:
    """The model input of one pass: RGB uint8 (H, W, 3) -> float32 (h, w, 3) in 0..255.

    With ``bucket`` the size is rounded to a multiple of it (the aspect ratio changes by less
    than half a bucket per side); the maps are resized back to (H, W) when merged."""
    height, width = image.shape[:2]
    h, w = input_size(height, width, p.scale, mode, bucket)
    if mode == "occse":
        from PIL import Image

        out = image
        if (h, w) != (height, width):
            out = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))
        x = out.astype(np.float32)
        return np.ascontiguousarray(x[:, ::-1]) if p.flip else x
    x = image.astype(np.float32)
    if p.flip:
        x = np.ascontiguousarray(x[:, ::-1])
    if (h, w) != (height, width):
        shrink = h < height or w < width
        interp = cv2.INTER_AREA if (mode == "mean" and shrink) else cv2.INTER_LINEAR
        x = np.asarray(cv2.resize(x, (w, h), interpolation=interp), dtype=np.float32)
    return x


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel, no antialias) resize of (h, w, C) float32 maps to ``size`` (H, W).

    Equals ``tf.image.resize(..., "bilinear")``; cv2 takes at most 128 channels, so wider stacks
    go in chunks.
    """
    height, width = size
    maps = np.ascontiguousarray(maps, dtype=np.float32)
    if maps.shape[:2] == (height, width):
        return maps.copy()
    channels = maps.shape[2]
    if channels == 0:
        return np.zeros((height, width, 0), np.float32)
    chunks = []
    for start in range(0, channels, CV2_MAX_CHANNELS):
        part = cv2.resize(
            np.ascontiguousarray(maps[..., start : start + CV2_MAX_CHANNELS]),
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        )
        chunks.append(part.reshape(height, width, -1))
    return np.concatenate(chunks, axis=2) if len(chunks) > 1 else chunks[0]


def combine_scores(scores: np.ndarray, config: TTAConfig | None) -> np.ndarray:
    """Pass scores (P, L) -> (L,): keras-explainable sums and divides by its divisor, the other
    modes average."""
    scores = np.asarray(scores, dtype=np.float32)
    if config is not None and config.mode == "keras-explainable":
        divisor = np.float32(len(config.scales) * (2 if config.flip else 1))
        return np.asarray(scores.sum(axis=0) / divisor, dtype=np.float32)
    return np.asarray(scores.mean(axis=0), dtype=np.float32)


def combine_maps(
    pass_maps: Sequence[np.ndarray],
    passes: Sequence[Pass],
    size: tuple[int, int],
    config: TTAConfig | None,
    timings: MutableMapping[str, float] | None = None,
) -> np.ndarray:
    """Merge one image's per-pass maps (each (h_p, w_p, C), as the model gave them for the
    flipped/scaled input) into (H, W, C) float32 in [0, 1].

    ``timings``: if given, seconds are added to ``tta_resize`` (flip back, resize, sum) and
    ``normalize``.
    """
    if len(pass_maps) != len(passes):
        raise ValueError(f"{len(pass_maps)} maps for {len(passes)} passes")
    clock = time.perf_counter
    start = clock()
    if config is None:
        (maps,) = pass_maps
        low = positive_normalize(maps)
        normalized = clock()
        out = np.asarray(np.clip(resize_maps(low, size), 0.0, 1.0))
        _add(timings, normalize=normalized - start, tta_resize=clock() - normalized)
        return out
    total: np.ndarray | None = None
    for maps, p in zip(pass_maps, passes, strict=True):
        m = maps[:, ::-1] if p.flip else maps
        up = resize_maps(m, size)
        if config.mode == "occse":
            np.maximum(up, 0, out=up)
        total = up if total is None else total + up
    assert total is not None
    merged = clock()
    if config.mode == "occse":
        out = max_normalize(total)
    else:
        if config.mode == "keras-explainable":
            total = total / np.float32(len(config.scales) * (2 if config.flip else 1))
        else:
            total = total / np.float32(len(passes))
        out = positive_normalize(total)
    _add(timings, tta_resize=merged - start, normalize=clock() - merged)
    return out


def _add(timings: MutableMapping[str, float] | None, **seconds: float) -> None:
    if timings is not None:
        for key, value in seconds.items():
            timings[key] = timings.get(key, 0.0) + value
