"""Palette, overlays, heatmaps and grid: known answers and shape errors."""

from __future__ import annotations

import numpy as np
import pytest

from cam_rt.runtime import (
    ConfigError,
    InputError,
    blend,
    class_overlay,
    grid,
    heatmap,
    heatmap_overlay,
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


def test_colour_shape_errors() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(InputError, match="differ in size"):
        heatmap_overlay(image, np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match=r"expected RGB \(H, W, 3\)"):
        blend(np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match=r"expected RGB \(H, W, 3\)"):
        grid([np.zeros((4, 4, 4), np.uint8)])
