"""Reading image files, atomic writes, encoding (discovery and label files: test_inputs; what
an output path may be, temporaries: test_io_outputs)."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime.batch.io import encode_palette_png, read_image, write_atomic
from cam_rt.runtime.errors import InputError


def _save(path: Path, array: np.ndarray, **kw: object) -> Path:
    Image.fromarray(array).save(path, **kw)
    return path


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    loaded = read_image(_save(tmp_path / "x.png", rgb))
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert loaded.conversions == ()


def test_conversions(tmp_path: Path) -> None:
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = read_image(_save(tmp_path / "g.png", gray))
    assert out.conversions == ("grayscale to RGB",) and out.pixels.shape == (4, 5, 3)
    deep = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    out = read_image(_save(tmp_path / "d.png", deep))
    assert out.conversions == ("16-bit to 8-bit",)
    np.testing.assert_array_equal(out.pixels[..., 0], np.rint(deep / 65535 * 255).astype(np.uint8))
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0] = 200
    out = read_image(_save(tmp_path / "a.png", rgba))
    assert out.conversions == ("RGBA (alpha dropped) to RGB",) and out.pixels[0, 0].tolist() == [
        200,
        0,
        0,
    ]
    pal = Image.fromarray(np.full((3, 3, 3), 90, np.uint8)).convert("P")
    pal.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").conversions == ("palette to RGB",)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[0, 0] = 255  # top-left white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "r.jpg")
    assert out.pixels.shape == (4, 2, 3)
    assert out.conversions == ("EXIF orientation",)
    assert out.pixels[0, 1].min() > 200  # the white corner is now top-right


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is empty \(0 bytes\)"),
        (b"hello, not an image", "is not an image Pillow can read"),
    ],
)
def test_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_image(path)


def test_truncated_and_too_large(tmp_path: Path) -> None:
    good = _save(
        tmp_path / "g.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    )
    data = good.read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(tmp_path / "t.png")
    with pytest.raises(InputError, match="above --max-pixels"):
        read_image(good, max_pixels=64 * 64 - 1)
    with pytest.raises(InputError) as small:  # one formatter for pixel counts: no "0 M"
        read_image(good, max_pixels=100)
    assert str(small.value) == (
        f"{good} is 64x64 pixels (4,096 pixels), above --max-pixels 100 (100 pixels): raise "
        "--max-pixels if the image is trusted"
    )
    with pytest.raises(InputError, match="cannot read"):
        read_image(tmp_path / "missing.png")


def test_write_atomic_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.bin"
    write_atomic(target, b"first")

    def boom(f: object) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(target, boom)
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["x.bin"]


def test_atomic_files_get_ordinary_permissions(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; outputs (and models served by another user) must not be."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    target = tmp_path / "atomic.bin"
    write_atomic(target, b"x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~mask
    target.chmod(0o600)  # a file the user made private stays private when replaced
    write_atomic(target, b"y")
    assert target.stat().st_mode & 0o777 == 0o600 and target.read_bytes() == b"y"


def test_palette_png_uses_voc_colours() -> None:
    labels = np.asarray([[0, 1], [15, 255]], np.uint8)
    with Image.open(io.BytesIO(encode_palette_png(labels))) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), labels)
        assert np.asarray(im.convert("RGB"))[0, 1].tolist() == [128, 0, 0]


def _exif_image(path: Path, fmt: str) -> bytes:
    """An image whose EXIF block holds an orientation and a Software string."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate
    exif[0x0131] = "cam-rt test"  # Software (ASCII)
    Image.fromarray(np.full((8, 12, 3), 90, np.uint8)).save(path, fmt, exif=exif)
    return path.read_bytes()


@pytest.mark.parametrize(("name", "fmt"), [("photo.jpg", "JPEG"), ("photo.webp", "WEBP")])
def test_corrupt_exif_block_is_an_input_error(tmp_path: Path, name: str, fmt: str) -> None:
    """Software (0x0131, ASCII) retagged as Compression (0x0103, which Pillow writes as a SHORT):
    ImageOps.exif_transpose re-encodes the block and struct.pack fails on the string."""
    path = tmp_path / name
    data = _exif_image(path, fmt)
    assert data.count(b"\x01\x31\x00\x02") == 1  # big-endian tag 0x0131, type 2 (ASCII)
    path.write_bytes(data.replace(b"\x01\x31\x00\x02", b"\x01\x03\x00\x02"))
    with pytest.raises(InputError) as info:
        read_image(path)
    assert str(info.value) == (
        f"{path}: corrupt or truncated image data (struct.error: required argument is not an "
        "integer): re-save or remove it"
    )


def _rich_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 3  # Orientation: rotated 180 degrees (exif_transpose re-encodes the block)
    exif[0x010F] = "cam-rt"  # Make
    exif[0x0131] = "cam-rt test"  # Software
    exif[0x8769] = {0x9003: "2020:01:01 00:00:00", 0xA002: 32, 0x829A: 0.5}  # Exif IFD
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}  # GPS IFD
    return exif


def _corpus(folder: Path) -> dict[str, bytes]:
    """One small image per format, with EXIF where the format carries it."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rgb[8:16] = 40  # a flat band, so the codecs use more than one kind of block
    saves: dict[str, dict[str, object]] = {
        "a.png": {},
        "a.jpg": {"exif": _rich_exif()},
        "a.webp": {"exif": _rich_exif()},
        "a.tif": {"compression": "tiff_lzw"},
        "raw.tif": {},
        "a.bmp": {},
    }
    corpus = {}
    for name, options in saves.items():
        Image.fromarray(rgb).save(folder / name, **options)
        corpus[name] = (folder / name).read_bytes()
    Image.fromarray(rgb).convert("P").save(folder / "a.gif")
    corpus["a.gif"] = (folder / "a.gif").read_bytes()
    return corpus


def _metadata_span(data: bytes) -> tuple[int, int]:
    """Where a file's metadata lies: the first IFD (TIFF), the EXIF block (JPEG, WebP), else
    the header."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        (offset,) = struct.unpack(("<" if data[:2] == b"II" else ">") + "I", data[4:8])
        return offset, min(len(data), offset + 2 + 12 * 16)
    for magic in (b"MM\x00*", b"II*\x00"):
        start = data.find(magic)
        if start >= 0:
            return start, min(len(data), start + len(_rich_exif().tobytes()))
    return 2, min(len(data), 64)


def _mutants(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """1..3 bytes changed (every other mutant in the metadata), every fourth also truncated."""
    low, high = _metadata_span(data)
    out = []
    for i in range(count):
        m = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(low, high) if i % 2 == 0 else rng.randrange(2, len(m))
            m[where] = rng.randrange(256)
        if i % 4 == 3:
            del m[rng.randrange(1, len(m)) :]
        out.append(bytes(m))
    return out


def test_mutated_files_give_an_image_or_an_input_error(tmp_path: Path) -> None:
    """A fixed-seed corpus of byte-flipped and truncated PNG, JPEG, WebP, TIFF, BMP and GIF
    files: read_image returns an image or raises InputError, never anything else."""
    rng = random.Random(15)
    escaped: list[str] = []
    outcomes = {"image": 0, "error": 0}
    for name, data in _corpus(tmp_path).items():
        for i, mutant in enumerate(_mutants(data, rng, 60)):
            path = tmp_path / f"m{i}_{name}"
            path.write_bytes(mutant)
            try:
                loaded = read_image(path, max_pixels=10**6)
            except InputError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)
                outcomes["error"] += 1
            except Exception as exc:  # what the test is for: nothing else gets out
                escaped.append(f"{path.name}: {type(exc).__module__}.{type(exc).__name__}: {exc}")
            else:
                assert loaded.pixels.dtype == np.uint8 and loaded.pixels.ndim == 3
                outcomes["image"] += 1
            path.unlink()
    assert not escaped, "\n".join(escaped)
    assert sum(outcomes.values()) == 7 * 60
    assert outcomes["image"] > 100 and outcomes["error"] > 100  # both paths were exercised


def _png_header_only(path: Path, height: int, width: int) -> Path:
    """A grayscale PNG whose header says ``height`` x ``width`` and whose data is a broken
    zlib stream (the decoder fails at once, nothing large is decoded)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    broken = b"\x78\x9c\xff\xff\xff\xff"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", broken))
    return path


def test_max_pixels_may_exceed_pillows_own_limit(tmp_path: Path) -> None:
    """180 MP is above Pillow's 179 MP bomb limit: with --max-pixels 200000000 the file gets
    past the size check and fails only on its broken data."""
    path = _png_header_only(tmp_path / "big.png", 9000, 20000)
    with pytest.raises(InputError) as broken:
        read_image(path, max_pixels=200_000_000)
    assert str(broken.value) == (
        f"{path}: corrupt or truncated image data (OSError: broken data stream when reading "
        "image file): re-save or remove it"
    )
    with pytest.raises(InputError) as refused:
        read_image(path, max_pixels=179_999_999)
    assert str(refused.value) == (
        f"{path} is 9000x20000 pixels (180 MP), above --max-pixels 179999999 (180 MP): raise "
        "--max-pixels if the image is trusted"
    )
    assert Image.MAX_IMAGE_PIXELS is None  # cam-rt checks its own limit; Pillow's is off


def test_concurrent_reads_keep_their_own_limits(tmp_path: Path) -> None:
    path = _save(tmp_path / "x.png", np.zeros((64, 64, 3), np.uint8))

    def read(limit: int) -> str:
        try:
            read_image(path, max_pixels=limit)
        except InputError:
            return "refused"
        return "read"

    limits = [64 * 64 - 1, 64 * 64] * 100
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(read, limits))
    assert got == ["refused", "read"] * 100


def test_sixteen_bit_rgb_is_converted_with_a_note(tmp_path: Path) -> None:
    import cv2

    deep = (np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000 + 7).astype(np.uint16)
    for name in ("rgb16.png", "rgb16.tif"):
        assert cv2.imwrite(str(tmp_path / name), deep[..., ::-1])  # OpenCV writes BGR
        out = read_image(tmp_path / name)
        assert out.conversions == ("16-bit RGB to 8-bit",)
        np.testing.assert_array_equal(out.pixels, (deep >> 8).astype(np.uint8))  # high byte


def test_special_files_are_not_images(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"pipe\.png is a FIFO \(named pipe\), not an image file"):
        read_image(fifo)  # opened without blocking
    with pytest.raises(InputError, match="is a folder, not an image file"):
        read_image(tmp_path)
