"""Reading image files, atomic writes, encoding (discovery and label files: test_inputs)."""

from __future__ import annotations

import io
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
