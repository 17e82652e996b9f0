"""The --grid sheet: thumbnails of the first 8 inputs, read back from disk when skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime.batch.grid import GRID_SIZE, GridSheet, thumbnail
from cam_rt.runtime.batch.inputs import InputItem
from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.maps.colour import grid


def _items(folder: Path, n: int) -> list[InputItem]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        path = folder / f"i{i}.png"
        Image.fromarray(np.full((10, 20, 3), 20 * i, np.uint8)).save(path)
        items.append(InputItem(path, f"i{i}"))
    return items


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_thumbnail_shrinks_never_enlarges() -> None:
    assert thumbnail(np.zeros((512, 1024, 3), np.uint8)).shape == (128, 256, 3)
    assert thumbnail(np.zeros((10, 20, 3), np.uint8)).shape == (10, 20, 3)


def test_sheet_of_the_first_eight(tmp_path: Path) -> None:
    items = _items(tmp_path / "in", GRID_SIZE + 2)
    sheet = GridSheet(tmp_path / "g" / "grid.png", items, max_pixels=10**6)
    sheet.check_writable()
    image = np.full((10, 20, 3), 7, np.uint8)
    overlay = np.full((10, 20, 3), 200, np.uint8)
    sheet.add("i1", image, overlay, "cat 0.90, dog 0.20")
    sheet.add("i9", image, overlay, "cat 0.50")  # not on the sheet: ignored
    sheet.add("i2", image, None, "cat 0.50")  # no overlay drawn: left out
    sheet.write(tmp_path / "out", {})
    expected = grid(
        [image, overlay],
        ["i1", "overlay"],
        columns=GRID_SIZE,
        captions=["", "cat 0.90, dog 0.20"],
    )
    np.testing.assert_array_equal(_read(sheet.path), expected)


def test_skipped_inputs_are_read_back_with_their_record_title(tmp_path: Path) -> None:
    items = _items(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    overlay = np.full((10, 20, 3), 99, np.uint8)
    Image.fromarray(overlay).save(out / "i0.overlay.png")
    sheet = GridSheet(tmp_path / "grid.png", items, max_pixels=10**6)
    classes = [{"name": "a", "probability": 0.5}, {"name": "b", "probability": 0.25}]
    sheet.write(out, {"i0": {"classes": classes}})
    image = np.full((10, 20, 3), 0, np.uint8)
    expected = grid(
        [image, overlay], ["i0", "overlay"], columns=GRID_SIZE, captions=["", "a 0.50, b 0.25"]
    )
    np.testing.assert_array_equal(_read(sheet.path), expected)


def test_nothing_to_show_writes_nothing(tmp_path: Path) -> None:
    sheet = GridSheet(tmp_path / "grid.png", _items(tmp_path / "in", 1), max_pixels=10**6)
    sheet.write(tmp_path, {})
    assert not sheet.path.exists()


def test_a_folder_is_not_a_grid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--grid .* cannot be written \(it is a folder\)"):
        GridSheet(tmp_path, [], max_pixels=1).check_writable()


def test_captions_are_drawn_under_each_picture() -> None:
    pics = [np.full((10, 20, 3), 128, np.uint8)] * 2
    plain = grid(pics, ["x", "y"], columns=2, cell=64)
    captioned = grid(pics, ["x", "y"], columns=2, cell=64, captions=["", "cat 0.90"])
    bar = 14
    assert captioned.shape[0] == plain.shape[0] + 2 * bar
    np.testing.assert_array_equal(captioned[: plain.shape[0]], plain)
    under = captioned[plain.shape[0] :]
    assert (under[:, :64] == 255).all() and (under[:, 64:] < 255).any()  # text under "y" only
    other = grid(pics, ["x", "y"], columns=2, cell=64, captions=["", "dog 0.10"])
    assert not np.array_equal(other, captioned)
