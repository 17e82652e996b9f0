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


def test_overlay_alpha_curve() -> None:
    """smoothstep(min(m / 0.5, 1)) times the opacity: known values, monotone, flat at 0."""
    from cam_rt.runtime.maps.colour import FULL_AT, overlay_alpha

    assert FULL_AT == 0.5
    got = overlay_alpha(np.asarray([0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, -0.2, 1.5]), 0.8)
    np.testing.assert_allclose(
        got, 0.8 * np.asarray([0.0, 0.028, 0.104, 0.5, 1.0, 1.0, 1.0, 0.0, 1.0]), atol=1e-6
    )
    ramp = overlay_alpha(np.linspace(0.0, 1.0, 101))
    assert (np.diff(ramp) >= 0).all() and ramp[1] < 0.01


def test_grid_captions_break_between_classes() -> None:
    from cam_rt.runtime.maps.colour import _two_lines

    assert _two_lines("circle 0.92, ellipse 0.96", 18) == ("circle 0.92,", "ellipse 0.96")
    assert _two_lines("circle 0.78", 18) == ("circle 0.78", "")
    assert _two_lines("abcdefghijklmnopqrstuvwxyz", 10) == ("abcdefghij", "klmnopqrst")
