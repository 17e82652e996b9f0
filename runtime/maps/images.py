"""Checking and converting input arrays into RGB uint8 images. Pure arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..errors import InputError

__all__ = ["DEFAULT_MAX_PIXELS", "as_image_list", "describe_pixels", "prepare_image"]

AlphaPolicy = Literal["error", "drop"]

#: The default of ``--max-pixels``: the largest image cam-rt decodes and the largest model
#: input (one TTA pass, after buckets) it builds. Pillow's own limit is not used (see
#: :func:`cam_rt.runtime.batch.io.read_image`), so the option may go above it.
DEFAULT_MAX_PIXELS = 100_000_000


def describe_pixels(count: int) -> str:
    """A pixel count as messages print it: ``100 pixels``, ``4,096 pixels``, ``12.3 MP``,
    ``179 MP``, ``10,800 MP`` (MP: 10^6 pixels)."""
    if count < 1_000_000:
        return f"{count:,} pixels"
    mega = count / 1e6
    return f"{mega:,.0f} MP" if mega >= 99.95 else f"{mega:.3g} MP"


def as_image_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """One image (H, W[, C]), a batch (N, H, W, C) or a list of images -> a list of arrays."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            items = list(images)
        elif images.ndim in (2, 3):
            items = [images]
        else:
            raise InputError(
                f"images have shape {images.shape}; expected (H, W, 3), (N, H, W, 3) or a list"
            )
    elif isinstance(images, Sequence):
        items = list(images)
    else:
        raise InputError(
            f"images is a {type(images).__name__}; expected an array (H, W, 3), a batch "
            "(N, H, W, 3) or a list of arrays"
        )
    if not items:
        raise InputError("the batch is empty: pass at least one image")
    return items


def prepare_image(image: object, index: int = 0, alpha: AlphaPolicy = "error") -> np.ndarray:
    """Validate one image and return it as contiguous RGB uint8 (H, W, 3).

    Grayscale (H, W) or (H, W, 1) is converted to RGB. RGBA (H, W, 4) is refused unless
    ``alpha == "drop"``. Floats must be finite and in 0..255 (rounded to uint8).
    """
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"image {index} is a {type(image).__name__}; expected a NumPy array (H, W, 3) uint8"
        )
    if image.size == 0 or image.ndim < 2 or min(image.shape[:2]) == 0:
        raise InputError(f"image {index} has shape {image.shape}: it is empty")
    x = image
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating):
            bad = int(np.count_nonzero(~np.isfinite(x)))
            if bad:
                raise InputError(
                    f"image {index} has {bad} non-finite values (NaN or inf): clean the image"
                )
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 255:
                raise InputError(
                    f"image {index} has values in [{lo:g}, {hi:g}]; expected RGB in 0..255 "
                    "(uint8, or floats on the same scale)"
                )
            x = np.rint(x).astype(np.uint8)
        else:
            raise InputError(
                f"image {index} has dtype {x.dtype}; expected uint8 RGB (0..255): convert it, "
                "e.g. 16-bit with (x >> 8).astype(np.uint8)"
            )
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    elif x.ndim == 3 and x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    elif x.ndim == 3 and x.shape[2] == 4:
        if alpha != "drop":
            raise InputError(
                f"image {index} has 4 channels (RGBA); expected RGB: drop the alpha channel "
                "(image[..., :3]) or pass alpha='drop' (--alpha drop)"
            )
        x = x[:, :, :3]
    elif x.ndim != 3 or x.shape[2] != 3:
        raise InputError(
            f"image {index} has shape {image.shape}; expected (H, W, 3) RGB, (H, W) grayscale or "
            "(H, W, 4) RGBA"
        )
    return np.ascontiguousarray(x)
