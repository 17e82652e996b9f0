"""Test-time augmentation: which passes to run, how to resize inputs, how to merge the maps.

Pure arrays; the model run itself is not here. Three modes (the README's Run section):

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

Input size (:class:`InputSize`, ``--input-size``): every pass resizes the original (H, W) image
once, straight to ``input_size(target, scale)``, where the target is the model's trained size
(``model``), the image's own (``image``), a given HxW, or a shorter side N; scales are relative to
the target and the maps are still merged at (H, W).
"""

from __future__ import annotations

import math
import numbers
import re
import time
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import cv2
import numpy as np

from ..errors import ConfigError
from ..metadata import ModelMetadata
from .filters import max_normalize, positive_normalize

__all__ = [
    "INPUT_SIZE_MODES",
    "TTA_MODES",
    "InputSize",
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
InputSizeMode = Literal["auto", "model", "image", "size", "side"]
INPUT_SIZE_MODES: tuple[str, ...] = ("auto", "model", "image", "size", "side")
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
class InputSize:
    """The size each image is resized to before the network (``--input-size``).

    - ``auto`` (default): ``model`` for files that record their trained size
      (``ModelMetadata.input_size``), else ``image``;
    - ``model``: the trained size, whatever the image's size;
    - ``image``: the image's own resolution;
    - ``size``: ``size`` (height, width), e.g. ``InputSize("size", size=(320, 480))``;
    - ``side``: shorter side ``side`` px, aspect ratio kept:
      ``(round(H * N / min(H, W)), round(W * N / min(H, W)))``, half to even.

    TTA scales are relative to this target; the maps come back at the image's resolution.
    Files with ``fixed_size`` take only ``model`` (or ``size`` equal to it) and scale 1.
    """

    mode: InputSizeMode = "auto"
    size: tuple[int, int] | None = None
    side: int = 0

    def __post_init__(self) -> None:
        if self.mode not in INPUT_SIZE_MODES:
            raise ConfigError(
                f"input_size mode '{self.mode}' is unknown: use one of "
                f"{', '.join(INPUT_SIZE_MODES)}"
            )
        if self.mode == "size":
            size = tuple(self.size) if isinstance(self.size, Iterable) else ()
            if len(size) != 2 or not all(_positive_int(v) for v in size):
                raise ConfigError(
                    f"input_size size {self.size!r} must be (height, width) in pixels, "
                    "e.g. (320, 480)"
                )
            object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        elif self.size is not None:
            raise ConfigError(f"input_size size {self.size!r} is only for mode 'size'")
        if self.mode == "side" and not _positive_int(self.side):
            raise ConfigError(f"input_size side {self.side!r} must be an integer >= 1, e.g. 448")
        if self.mode != "side" and self.side != 0:
            raise ConfigError(f"input_size side {self.side!r} is only for mode 'side'")

    @classmethod
    def parse(cls, text: str) -> InputSize:
        """``model``, ``image``, ``auto``, ``HxW`` (e.g. ``320x480``) or ``N`` (shorter side)."""
        value = text.strip().lower()
        if value in ("auto", "model", "image"):
            return cls(value)  # type: ignore[arg-type]
        size = re.fullmatch(r"(\d+)x(\d+)", value)
        if size and min(int(size[1]), int(size[2])) >= 1:
            return cls("size", size=(int(size[1]), int(size[2])))
        if value.isdigit() and int(value) >= 1:
            return cls("side", side=int(value))
        raise ConfigError(
            f"--input-size '{text}' is not model, image, HxW or N: e.g. model, 320x480 or 448"
        )

    def __str__(self) -> str:
        if self.mode == "size" and self.size is not None:
            return f"{self.size[0]}x{self.size[1]}"
        return str(self.side) if self.mode == "side" else self.mode

    def resolved(self, metadata: ModelMetadata | None) -> InputSizeMode:
        """The mode that runs for this model: ``auto`` becomes ``model`` or ``image``."""
        if self.mode != "auto":
            return self.mode
        known = metadata is not None and metadata.input_size is not None
        return "model" if known else "image"

    def target(self, height: int, width: int, metadata: ModelMetadata | None) -> tuple[int, int]:
        """(h, w) an image of ``height`` x ``width`` is resized to (TTA scale 1)."""
        mode = self.resolved(metadata)
        if mode == "model":
            if metadata is None or metadata.input_size is None:
                raise ConfigError(
                    "the model does not record the input size it was trained at: pass "
                    "--input-size image, HxW or N"
                )
            return metadata.input_size
        if mode == "size" and self.size is not None:
            return self.size
        if mode == "side":
            short = min(height, width)
            return (
                max(1, round(Fraction(height * self.side, short))),
                max(1, round(Fraction(width * self.side, short))),
            )
        return height, width

    def check(
        self,
        metadata: ModelMetadata,
        tta: TTAConfig | None,
        bucket: int = 0,
        where: str = "the model",
    ) -> None:
        """Refuse, before any image runs, what ``where`` cannot take: ``model`` without a
        recorded size, and for fixed-size files another size, TTA scales or buckets."""
        mode = self.resolved(metadata)
        if mode == "model" and metadata.input_size is None:
            raise ConfigError(
                f"{where} does not record the input size it was trained at: pass "
                "--input-size image, HxW or N"
            )
        if not metadata.fixed_size or metadata.input_size is None:
            return
        h, w = metadata.input_size
        fixed = f"{where} takes only {h}x{w} inputs (its head needs that size)"
        if mode in ("image", "side") or (mode == "size" and self.size != (h, w)):
            raise ConfigError(
                f"{fixed}: --input-size {self} would feed it other sizes; pass --input-size model"
            )
        if any(p.scale != 1.0 for p in plan_passes(tta)):
            raise ConfigError(f"{fixed}: TTA scales need a dynamic-size export; pass --scales 1")
        if bucket_size(h, w, bucket) != (h, w):
            raise ConfigError(f"{fixed}: --bucket {bucket} would change it; pass --bucket 0")


def _positive_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) >= 1


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


def resize_input(
    image: np.ndarray,
    p: Pass,
    mode: str | None,
    bucket: int = 0,
    target: tuple[int, int] | None = None,
) -> np.ndarray:
    """The model input of one pass: RGB uint8 (H, W, 3) -> float32 (h, w, 3) in 0..255.

    ``target`` (default: the image's (H, W)) is the size scale 1 stands for (see
    :class:`InputSize`); the image is resized once, straight to the pass size, area/bilinear
    (or Pillow bicubic for ``occse``) judged against (H, W). With ``bucket`` the size is
    rounded to a multiple of it (the aspect ratio changes by less than half a bucket per
    side); the maps are resized back to (H, W) when merged."""
    height, width = image.shape[:2]
    base_h, base_w = target if target is not None else (height, width)
    h, w = input_size(base_h, base_w, p.scale, mode, bucket)
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
