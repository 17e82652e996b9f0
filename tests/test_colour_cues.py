"""Palette, overlays, heatmaps, grid, seeds and boxes: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cam_rt.runtime import (
    ConfigError,
    InputError,
    blend,
    boxes,
    class_overlay,
    grid,
    heatmap,
    heatmap_overlay,
    seeds,
    voc_palette,
)


def test_voc_palette() -> None:
    p = voc_palette()
    assert p.shape == (256, 3) and p.dtype == np.uint8
    assert p[0].tolist() == [0, 0, 0]
    assert p[1].tolist() == [128, 0, 0]  # aeroplane
    assert p[15].tolist() == [192, 128, 128]  # person
    assert p[20].tolist() == [0, 64, 128]  # tvmonitor
    assert p[255].tolist() == [224, 224, 192]  # void


def test_class_overlay_is_additive_and_clipped() -> None:
    maps = np.zeros((1, 2, 2), np.float32)
    maps[0, 0] = [1.0, 0.0]
    maps[0, 1] = [1.0, 1.0]
    out = class_overlay(maps, [0, 1])  # colours (128,0,0) and (0,128,0)
    np.testing.assert_allclose(out[0, 0], [128 / 255, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], [128 / 255, 128 / 255, 0], rtol=1e-6)
    strong = class_overlay(np.full((1, 1, 2), 3.0, np.float32), [0, 14])  # person + aeroplane
    assert strong.max() == 1.0
    with pytest.raises(InputError, match="for 3 classes"):
        class_overlay(maps, [0, 1, 2])


def test_blend() -> None:
    image = np.full((1, 1, 3), 100, np.uint8)
    out = blend(image, np.ones((1, 1, 3), np.float32), alpha=0.25)
    assert out.tolist() == [[[139, 139, 139]]]  # .75 * 100 + .25 * 255 = 138.75
    with pytest.raises(ConfigError, match="alpha 2"):
        blend(image, np.ones((1, 1, 3)), alpha=2)


def test_heatmaps() -> None:
    ramp = np.linspace(0, 1, 8, dtype=np.float32)[None].repeat(2, 0)
    jet = heatmap(ramp, "jet")
    assert jet.shape == (2, 8, 3) and jet.dtype == np.uint8
    assert jet[0, 0, 2] > 100 and jet[0, 0, 0] == 0  # jet starts blue (RGB order)
    assert jet[0, -1, 0] > 100 and jet[0, -1, 2] == 0  # and ends red
    assert not np.array_equal(heatmap(ramp, "turbo"), jet)
    over = heatmap_overlay(np.zeros((2, 8, 3), np.uint8), ramp)
    assert over.max() == 255  # divided by its max
    with pytest.raises(ConfigError, match="colormap 'hot' is unknown"):
        heatmap(ramp, "hot")


def test_grid() -> None:
    pics = [np.full((10, 20, 3), i * 20, np.uint8) for i in range(10)]
    sheet = grid(pics, [f"p{i}" for i in range(10)], cell=32)
    bar = max(14, 32 // 10)
    assert sheet.shape == (2 * (32 + bar), 8 * 32, 3)  # at most 8 columns
    with pytest.raises(InputError, match="3 titles for 10 pictures"):
        grid(pics, ["a", "b", "c"])
    with pytest.raises(InputError, match="at least one"):
        grid([])


def test_seeds_known_answer() -> None:
    maps = np.zeros((1, 4, 2), np.float32)
    maps[0] = [[0.9, 0.1], [0.2, 0.8], [0.3, 0.3], [0.1, 0.1]]
    out = seeds(maps, [4, 14], bg_threshold=0.3)
    # background wins ties (0.3 vs 0.3), labels are class id + 1
    assert out.tolist() == [[5, 15, 0, 0]] and out.dtype == np.uint8
    assert seeds(maps, [300, 1], 0.5).dtype == np.uint16
    with pytest.raises(ConfigError, match="bg_threshold 1.5"):
        seeds(maps, [4, 14], 1.5)


def test_boxes_largest_and_all() -> None:
    m = np.zeros((10, 12), np.float32)
    m[1:3, 1:4] = 1.0  # 6 px, peak 1
    m[5:9, 6:11] = 0.5  # 20 px
    m[0, 11] = 0.1  # below 0.2 * max
    (largest,) = boxes(m, class_id=3, threshold=0.2)
    assert (largest.class_id, largest.as_list(), largest.area, largest.peak) == (
        3,
        [6, 5, 11, 9],
        20,
        0.5,
    )
    every = boxes(m, 3, 0.2, mode="all")
    assert [b.as_list() for b in every] == [[6, 5, 11, 9], [1, 1, 4, 3]]
    assert boxes(m, 3, threshold=0.8, mode="all")[0].as_list() == [1, 1, 4, 3]
    assert boxes(np.zeros((3, 3)), 0) == []
    with pytest.raises(ConfigError, match="threshold 0 must be in"):
        boxes(m, 0, threshold=0)
