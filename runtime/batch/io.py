"""Image files in, result files out: decoding with Pillow, atomic writes, encoders.

Everything cam-rt writes goes through :func:`write_atomic` (temporary file in the same folder,
then ``os.replace``), so an interrupted run never leaves a partial output file.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import InputError
from ..maps.colour import voc_palette

__all__ = [
    "IMAGE_SUFFIXES",
    "LoadedImage",
    "encode_json",
    "encode_npz",
    "encode_palette_png",
    "encode_png",
    "read_image",
    "write_atomic",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 100_000_000


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """A decoded image: RGB uint8 (H, W, 3) and the conversions applied to get there."""

    pixels: np.ndarray
    conversions: tuple[str, ...]


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path`` to RGB uint8, EXIF orientation applied.

    16-bit, grayscale, palette, CMYK and RGBA images are converted (named in ``conversions``).
    Raises InputError for empty, corrupt, truncated or non-image files and for images above
    ``max_pixels`` (checked from the header, before decoding: decompression bombs).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    conversions: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise InputError(
                        f"{path} is {width}x{height} = {width * height / 1e6:.0f} megapixels, "
                        f"above --max-pixels {max_pixels / 1e6:.0f} M: raise the limit if the "
                        "image is trusted"
                    )
                im.load()
                if im.getexif().get(0x0112, 1) not in (0, 1):  # 0x0112: Orientation
                    conversions.append("EXIF orientation")
                oriented = ImageOps.exif_transpose(im)
                rgb = _to_rgb(oriented, conversions)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path} is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{path} is not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated / corrupt data
        raise InputError(f"{path} is corrupt or truncated: {exc}") from exc
    return LoadedImage(rgb, tuple(conversions))


def _to_rgb(im: Any, conversions: list[str]) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        conversions.append("16-bit to 8-bit")
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if mode != "I" or arr.max() > 255 else 255.0
        gray = np.clip(np.rint(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    names = {
        "L": "grayscale",
        "LA": "grayscale+alpha",
        "P": "palette",
        "PA": "palette",
        "RGBA": "RGBA (alpha dropped)",
        "CMYK": "CMYK",
        "1": "1-bit",
        "F": "float",
    }
    conversions.append(f"{names.get(mode, mode)} to RGB")
    if mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


@functools.cache
def _umask() -> int:
    """The process umask (read once), without changing it where Linux tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (process-wide, so only as a fallback)
    os.umask(mask)
    return mask


def ordinary_permissions(path: str | Path) -> None:
    """Give ``path`` the permissions a plain ``open`` would (``mkstemp`` makes files 0600)."""
    os.chmod(path, 0o666 & ~_umask())


def publish(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary file to ``path``: the replaced file's permissions if there
    was one, else ordinary ones."""
    try:
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    except FileNotFoundError:
        ordinary_permissions(tmp)
    os.replace(tmp, path)


def write_atomic(path: Path, write: Callable[[BinaryIO], None] | bytes) -> None:
    """Write ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_png(rgb: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) -> PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


_PALETTE_BYTES = voc_palette().tobytes()


def encode_palette_png(labels: np.ndarray) -> bytes:
    """(H, W) uint8 labels -> a palette PNG with the Pascal VOC colours."""
    from PIL import Image

    if labels.dtype != np.uint8:
        raise InputError(
            f"a palette PNG holds labels 0..255; got {labels.dtype} (more than 254 classes)"
        )
    im = Image.fromarray(labels, "P")
    im.putpalette(_PALETTE_BYTES)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def encode_npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def encode_json(payload: Any) -> bytes:
    return (json.dumps(payload, indent=1, sort_keys=False) + "\n").encode()
