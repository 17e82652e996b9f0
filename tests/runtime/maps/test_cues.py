"""Segmentation seeds and boxes: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cam_rt.runtime import ConfigError, InputError, boxes, seeds


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


def test_seed_labels_avoid_void() -> None:
    maps = np.ones((2, 2, 1), np.float32)
    assert seeds(maps, [253], 0.1).dtype == np.uint8  # label 254
    out = seeds(maps, [254], 0.1)  # label 255 would be VOC's "void"
    assert out.dtype == np.uint16 and int(out[0, 0]) == 255
    with pytest.raises(InputError, match="class ids must be >= 0"):
        seeds(maps, [-1], 0.1)
