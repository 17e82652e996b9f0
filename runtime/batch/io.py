"""Image files in, result files out: decoding with Pillow, atomic writes, encoders.

Reading (:func:`read_image`): regular files (or encoded bytes) only, the size checked from the
header before decoding, whatever the decoder raises turned into one InputError naming the file.
Writing (:func:`write_atomic`, :class:`Temporary` + :func:`publish`): a temporary ``.cam-rt-<8
hex>.tmp`` in the destination's folder, then ``os.replace``; only a regular file (or nothing)
is replaced, and a symlink is followed (its target checked the same way; the link stays).
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from ..errors import ConfigError, InputError
from ..maps.colour import voc_palette
from ..maps.images import DEFAULT_MAX_PIXELS, describe_pixels

if sys.platform != "win32":
    import fcntl

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "LoadedImage",
    "PixelLimitError",
    "Temporary",
    "check_output",
    "encode_json",
    "encode_npz",
    "encode_palette_png",
    "encode_png",
    "open_image",
    "publish",
    "read_image",
    "remove_temporaries",
    "shown",
    "write_atomic",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
TEMPORARY = re.compile(r"\.cam-rt-[0-9a-f]{8}\.tmp")  # the whole name (fullmatch)
_DEEP = re.compile(r";16[BLN]$")  # raw modes of 16-bit samples: RGB;16B, RGBA;16N, LA;16B
_MODES = {"L": "grayscale", "LA": "grayscale+alpha", "P": "palette", "PA": "palette"}
_MODES.update({"RGBA": "RGBA (alpha dropped)", "CMYK": "CMYK", "1": "1-bit", "F": "float"})
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def shown(path: str | Path) -> str:
    """``path`` as messages print it: escaped (``ascii``) if it holds line breaks, control
    characters or undecodable bytes, so every message stays one printable line."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """A decoded image: RGB uint8 (H, W, 3) and the conversions applied to get there."""

    pixels: np.ndarray
    conversions: tuple[str, ...]


class PixelLimitError(InputError):
    """An image whose header claims more pixels than the limit: refused before decoding."""


@contextmanager
def open_image(
    path: Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
) -> Iterator[Any]:
    """The Pillow image of the file at ``path`` (or of the encoded image ``bytes``, named
    ``name`` in messages), not decoded yet; anything the block raises while decoding it (other
    than InputError and MemoryError) becomes an InputError naming the file. Refused before
    decoding: what is not a regular file (opened without blocking, so a FIFO does not hang),
    empty files, and images above ``max_pixels`` (from the header: :class:`PixelLimitError`).

    Pillow's own limit (``Image.MAX_IMAGE_PIXELS``, a process-wide setting) is switched off:
    the limit here is per call, so concurrent reads with different limits do not race, and
    ``--max-pixels`` may go above Pillow's 179 MP.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    if isinstance(path, bytes):
        label = name or "the image"
        if not path:
            raise InputError(f"{label} is empty (0 bytes)")
        with _decoding(io.BytesIO(path), label, max_pixels) as im:
            yield im
        return
    name = shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        os.close(fd)
        if info.st_size == 0 and stat.S_ISREG(info.st_mode):
            raise InputError(f"{name} is empty (0 bytes)")
        raise InputError(
            f"{name} is {_kind(info.st_mode)}, not an image file: give the path of an image file"
        )
    with os.fdopen(fd, "rb") as f, _decoding(f, name, max_pixels) as im:
        yield im


@contextmanager
def _decoding(f: BinaryIO, name: str, max_pixels: int) -> Iterator[Any]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise PixelLimitError(
                    f"{name} is {height}x{width} pixels ({describe_pixels(width * height)}),"
                    f" above --max-pixels {max_pixels} ({describe_pixels(max_pixels)}): "
                    "raise --max-pixels if the image is trusted"
                )
            yield im
    except (InputError, MemoryError):
        raise
    except UnidentifiedImageError as exc:
        raise InputError(f"{name} is not an image Pillow can read") from exc
    except Exception as exc:  # decoders raise OSError, struct.error, KeyError, ... on bad data
        what = type(exc).__name__
        if type(exc).__module__ != "builtins":
            what = f"{type(exc).__module__}.{what}"
        detail = " ".join(str(exc).split())[:200]
        raise InputError(
            f"{name}: corrupt or truncated image data ({what}: {detail}): re-save or remove it"
        ) from exc


def read_image(
    path: Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
) -> LoadedImage:
    """Decode ``path`` (or encoded image ``bytes``, named ``name``) to RGB uint8, EXIF
    orientation applied.

    16-bit, grayscale, palette, CMYK and RGBA images are converted (named in ``conversions``;
    16-bit RGB keeps the high byte of each sample, as Pillow decodes it). Raises InputError for
    special, empty, corrupt, truncated or non-image files and for images above ``max_pixels``
    (see :func:`open_image`); MemoryError passes through.
    """
    from PIL import ImageOps

    conversions: list[str] = []
    with open_image(path, max_pixels, name) as im:
        deep = _sixteen_bit(im)
        if im.getexif().get(0x0112, 1) not in (0, 1):  # 0x0112: Orientation
            conversions.append("EXIF orientation")
        oriented = ImageOps.exif_transpose(im)
        if deep:
            conversions.append(f"16-bit {oriented.mode} to 8-bit")
        rgb = _to_rgb(oriented, conversions)
    return LoadedImage(rgb, tuple(conversions))


def _sixteen_bit(im: Any) -> bool:
    """Whether Pillow decodes 16-bit samples into an 8-bit mode (RGB, RGBA, LA): read from the
    raw modes of the tiles, before loading. (16-bit grayscale has modes of its own.)"""
    if im.mode.startswith("I"):
        return False
    for tile in getattr(im, "tile", ()):
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and _DEEP.search(rawmode):
            return True
    return False


def _to_rgb(im: Any, conversions: list[str]) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        conversions.append("16-bit to 8-bit")
        arr = np.asarray(im)
        if mode != "I" or int(arr.max(initial=0)) > 255:  # 0..65535 -> 0..255, rounded
            wide = np.clip(arr, 0, 65535).astype(np.uint32)
            gray = ((wide + 128) // 257).astype(np.uint8)  # = rint(x / 65535 * 255)
        else:
            gray = np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    conversions.append(f"{_MODES.get(mode, mode)} to RGB")
    if mode == "F":
        arr = np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32)), 0, 255).astype(np.uint8)
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
    """Give ``path`` the permissions a plain ``open`` would."""
    os.chmod(path, 0o666 & ~_umask())


def check_output(path: Path) -> Path:
    """Where writing ``path`` lands: ``path``, or for a symlink the file it leads to (links are
    followed). ConfigError naming it if that exists and is not a regular file (a folder, FIFO,
    socket or device: cam-rt never replaces one). Nothing is created."""
    try:
        info = os.stat(path)  # follows links, /proc's /dev/stdout included
    except FileNotFoundError:
        info = None
    except OSError as exc:  # a link loop, a file used as a folder, no permission
        raise ConfigError(f"cannot write output {shown(path)}: {exc.strerror or exc}") from exc
    if info is not None and not stat.S_ISREG(info.st_mode):
        via = ""
        if os.path.islink(path):
            via = f" (through the symlink to {shown(os.readlink(path))})"
        raise ConfigError(
            f"output {shown(path)} is {_kind(info.st_mode)}{via}: cam-rt replaces only regular "
            "files; give the path of a file"
        )
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


class Temporary:
    """A new empty file ``.cam-rt-<8 hex>.tmp`` in ``folder`` (short whatever the output's name),
    permissions as a plain ``open`` gives; locked until closed (:func:`remove_temporaries` skips
    it), then removed unless :meth:`publish` moved it into place. A context manager."""

    def __init__(self, folder: Path) -> None:
        for _ in range(64):
            path = folder / f".cam-rt-{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC | _NOFOLLOW, 0o666)
            except FileExistsError:
                continue
            _lock(fd, wait=True)
            if _same_file(path, fd):  # not removed by a cleanup between creation and lock
                self.path, self.fd, self._published = path, fd, False
                return
            os.close(fd)
        raise FileExistsError(f"no free temporary name in {shown(folder)}")

    def publish(self, path: Path) -> None:
        """Move the temporary to ``path`` (see :func:`publish`)."""
        publish(self.path, path)
        self._published = True

    def close(self) -> None:
        """Remove the temporary unless published, and release the lock."""
        if self.fd < 0:
            return
        try:
            if not self._published and _same_file(self.path, self.fd):
                self.path.unlink()
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Temporary:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _lock(fd: int, wait: bool) -> bool:
    """Lock ``fd`` (``flock``, exclusive): False if another process holds it (``wait=False``)
    or the file system has no locks. (Windows: no locks; True.)"""
    if sys.platform == "win32":
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held; ENOLCK, EOPNOTSUPP: not supported here
        return False
    return True


def _same_file(path: Path, fd: int) -> bool:
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (info.st_dev, info.st_ino) == (mine.st_dev, mine.st_ino)


def remove_temporaries(folder: Path, recursive: bool = False) -> int:
    """Delete the temporaries (``.cam-rt-<8 hex>.tmp``, regular files) that interrupted writes
    left in ``folder`` (and its sub-folders if ``recursive``; links are not followed); those a
    live process is writing (locked) are left alone. Returns how many were deleted."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    for entry in entries:
        if recursive and entry.is_dir(follow_symlinks=False):
            removed += remove_temporaries(Path(entry.path), recursive=True)
        elif TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            removed += _remove_unlocked(Path(entry.path))
    return removed


def _remove_unlocked(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | _NOFOLLOW)
    except OSError:  # gone, or a link put there since
        return 0
    try:
        if not _lock(fd, wait=False) or not _same_file(path, fd):  # being written, or replaced
            return 0
        path.unlink()
        return 1
    finally:
        os.close(fd)


def publish(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary file to ``path`` (see :func:`check_output`: a symlink's target
    is replaced; anything but a regular file is refused): the replaced file's permissions if
    there was one, else ordinary ones."""
    target = check_output(Path(path))
    try:
        os.chmod(tmp, os.stat(target).st_mode & 0o7777)
    except FileNotFoundError:
        ordinary_permissions(tmp)
    os.replace(tmp, target)


def write_atomic(path: Path, write: Callable[[BinaryIO], None] | bytes) -> None:
    """Write ``path`` through a :class:`Temporary` in its folder and ``os.replace``; a symlink
    at ``path`` is followed. ConfigError (nothing written) when ``path`` is anything but a
    regular file or missing; OSError when the disk is full or the folder not writable (then
    nothing is left behind either)."""
    target = check_output(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with Temporary(target.parent) as tmp:
        with os.fdopen(tmp.fd, "wb", closefd=False) as f:
            if isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
        tmp.publish(target)


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
