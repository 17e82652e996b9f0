"""The render and write steps, on hand-made maps with known boxes, colours and seeds."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime.batch.render import (
    OUTPUT_KINDS,
    RenderConfig,
    output_path,
    render,
    write_outputs,
)
from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.explain import CamResult

ALL = tuple(OUTPUT_KINDS)


def _result() -> CamResult:
    """Two classes (ids 0 and 2) on a 6x8 image: class 0 has two regions, class 2 none."""
    maps = np.zeros((6, 8, 2), np.float32)
    maps[1:3, 1:4, 0] = 1.0  # 6 pixels, the largest region
    maps[4, 6, 0] = 0.5  # 1 pixel
    return CamResult(
        scores=np.asarray([2.0, -1.0, 0.5], np.float32),
        probabilities=np.asarray([0.9, 0.1, 0.6], np.float32),
        class_ids=(0, 2),
        class_names=("cat", "dog"),
        maps=maps,
    )


def test_regions_and_largest_boxes() -> None:
    image = np.zeros((6, 8, 3), np.uint8)
    rendered = render("a/x", _result(), image, RenderConfig(save=ALL, box_threshold=0.2))
    assert rendered.largest_boxes == [(0, [1, 1, 4, 3]), (2, None)]
    assert rendered.regions[0]["all"] == [
        {"box": [1, 1, 4, 3], "area": 6, "peak": 1.0},
        {"box": [6, 4, 7, 5], "area": 1, "peak": 0.5},
    ]
    assert rendered.regions[1] == {"class_id": 2, "class_name": "dog", "largest": None, "all": []}
    # a threshold above the small region's share of the peak leaves the largest only
    high = render("a/x", _result(), image, RenderConfig(box_threshold=0.6))
    assert [r["box"] for r in high.regions[0]["all"]] == [[1, 1, 4, 3]]


def test_overlay_is_the_class_colour_blended_over_the_image() -> None:
    image = np.full((6, 8, 3), 100, np.uint8)
    rendered = render("x", _result(), image, RenderConfig(overlay_alpha=0.5))
    # class id 0 has VOC label 1, (128, 0, 0); the background pixels keep half the image
    assert rendered.overlay[1, 1].tolist() == [114, 50, 50]
    assert rendered.overlay[0, 0].tolist() == [50, 50, 50]
    with Image.open(io.BytesIO(rendered.encoded("overlay"))) as im:
        np.testing.assert_array_equal(np.asarray(im), rendered.overlay)


def test_encoded_files_decode_to_the_result() -> None:
    result = _result()
    rendered = render("a/x", result, np.zeros((6, 8, 3), np.uint8), RenderConfig(save=ALL))
    with np.load(io.BytesIO(rendered.encoded("maps"))) as npz:
        assert npz["maps"].dtype == np.float16
        np.testing.assert_array_equal(npz["maps"], result.maps.astype(np.float16))
        assert npz["class_ids"].tolist() == [0, 2]
        assert npz["class_names"].tolist() == ["cat", "dog"]
        np.testing.assert_array_equal(npz["probabilities"], result.probabilities)
    with Image.open(io.BytesIO(rendered.encoded("seeds"))) as im:
        seeds = np.asarray(im)
    assert seeds[1, 1] == 1 and seeds[4, 6] == 1 and seeds[0, 0] == 0  # label = id + 1
    boxes = json.loads(rendered.encoded("boxes"))
    assert boxes["image"] == "a/x" and boxes["size"] == [6, 8] and boxes["threshold"] == 0.2
    assert boxes["boxes"] == [dict(r) for r in rendered.regions]
    with Image.open(io.BytesIO(rendered.encoded("heatmap"))) as im:
        assert im.size == (8, 6) and im.mode == "RGB"


def test_no_class_still_renders() -> None:
    empty = CamResult(
        np.zeros(3, np.float32), np.zeros(3, np.float32), (), (), np.zeros((4, 5, 0), np.float32)
    )
    image = np.full((4, 5, 3), 80, np.uint8)
    rendered = render("e", empty, image, RenderConfig(save=ALL))
    assert rendered.largest_boxes == []
    assert rendered.overlay.tolist() == np.full((4, 5, 3), 40, np.uint8).tolist()
    for kind in ALL:
        assert rendered.encoded(kind)


def test_write_outputs_writes_the_kinds_asked_in_order(tmp_path: Path) -> None:
    rendered = render("sub/x", _result(), np.zeros((6, 8, 3), np.uint8), RenderConfig())
    written = write_outputs(tmp_path, rendered, ("seeds", "overlay"))
    assert written == ["sub/x.seeds.png", "sub/x.overlay.png"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [
        "x.overlay.png",
        "x.seeds.png",
    ]
    assert output_path(tmp_path, "sub/x", "maps") == tmp_path / "sub" / "x.maps.npz"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"save": ()}, "--save is empty"),
        ({"save": ("overlay", "pdf")}, "--save pdf is unknown"),
        ({"bg_threshold": 1.5}, "--bg-threshold 1.5 is outside"),
        ({"box_threshold": 0.0}, "box threshold 0.0 must be in"),
        ({"colormap": "rainbow"}, "colormap 'rainbow' is unknown"),
        ({"overlay_alpha": -0.1}, "overlay_alpha -0.1 is outside"),
    ],
)
def test_bad_render_config(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RenderConfig(**kwargs)
