"""The legend, label strips and the overlay palette: text is drawn, colours stay distinct."""

from __future__ import annotations

import numpy as np

from cam_rt.runtime.maps.colour import overlay_colours
from cam_rt.runtime.maps.legend import legend


def test_legend_draws_its_text() -> None:
    photo = np.full((120, 160, 3), 128, np.uint8)
    red = np.array([255, 0, 0], np.uint8)
    cat = legend(photo, [("cat", 0.91, red)])
    dog = legend(photo, [("dog", 0.91, red)])
    assert cat.shape == photo.shape and cat.dtype == np.uint8
    changed = np.any(cat != photo, axis=2)
    ys, xs = np.nonzero(changed)
    assert ys.max() < 60 and xs.max() < 120  # in the top-left corner only
    assert np.all(cat[80:, 130:] == photo[80:, 130:])  # the rest of the picture is untouched
    assert np.any(cat != dog)  # the names themselves are drawn, not only a box
    assert np.any(np.all(cat == red, axis=2))  # the swatch has the class colour
    white = np.all(cat >= 200, axis=2)
    assert white.sum() > 20  # white text pixels
    assert np.array_equal(legend(photo[:40, :40], [("cat", 0.9, red)]), photo[:40, :40])


def test_a_thousand_classes_get_distinct_colours() -> None:
    colours = overlay_colours(list(range(1000))).astype(np.int64)
    assert len({tuple(c) for c in colours}) == 1000
    distance = np.sqrt(((colours[:, None, :] - colours[None, :, :]) ** 2).sum(-1))
    distance[np.arange(1000), np.arange(1000)] = np.inf
    assert distance.min() >= 25  # the minimum pairwise RGB distance the README states
    assert np.array_equal(overlay_colours([0, 1, 2]), overlay_colours([0, 1, 2]))  # deterministic


def test_legend_box_is_the_corner_the_legend_covers() -> None:
    from cam_rt.runtime.maps.legend import legend_box

    photo = np.full((213, 320, 3), 128, np.uint8)
    entries = [("tabby cat", 0.91, np.array([0, 0, 128], np.uint8)), ("dog", 0.4, np.zeros(3))]
    changed = np.any(legend(photo, entries) != photo, axis=2)
    ys, xs = np.nonzero(changed)
    assert legend_box(213, 320, entries) == (xs.max() + 1, ys.max() + 1)
    assert legend_box(40, 40, entries) == (0, 0) and legend_box(213, 320, []) == (0, 0)
