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
    # class id 0 has VOC label 1, (128, 0, 0), at alpha 0.5 * map; where the maps are 0 the
    # image is untouched (too small a picture for a legend)
    assert rendered.overlay is not None
    assert rendered.overlay[1, 1].tolist() == [114, 50, 50]
    assert rendered.overlay[0, 0].tolist() == [100, 100, 100]
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
        assert im.size[0] == 2 * 8 and im.size[1] > 6 and im.mode == "RGB"  # 2 panels, labels


def test_no_class_still_renders() -> None:
    empty = CamResult(
        np.zeros(3, np.float32), np.zeros(3, np.float32), (), (), np.zeros((4, 5, 0), np.float32)
    )
    image = np.full((4, 5, 3), 80, np.uint8)
    rendered = render("e", empty, image, RenderConfig(save=ALL))
    assert rendered.largest_boxes == []
    assert rendered.overlay is not None
    assert rendered.overlay.tolist() == image.tolist()
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


# --- issue #17: pictures a person reads -------------------------------------------------------


def _visibility(save_alpha: float | None = None) -> tuple[float, float]:
    """Mean |overlay - photo| inside and outside the objects of 12 synthetic images, the maps
    being the objects' masks (blurred at the edges like a CAM)."""
    import cv2

    from cam_rt.export.synthetic import VOID, generate

    inside, outside = [], []
    for sample in generate(12, seed=5, size=(96, 128)):
        ids = sample.labels
        maps = np.stack([(sample.mask == c + 1).astype(np.float32) for c in ids], axis=2)
        maps = np.stack([cv2.GaussianBlur(maps[..., i], (5, 5), 0) for i in range(len(ids))], 2)
        result = CamResult(
            np.zeros(6, np.float32),
            np.full(6, 0.9, np.float32),
            ids,
            tuple(f"c{c}" for c in ids),
            maps,
        )
        config = RenderConfig() if save_alpha is None else RenderConfig(overlay_alpha=save_alpha)
        rendered = render("s", result, sample.image, config)
        assert rendered.overlay is not None
        change = np.abs(rendered.overlay.astype(np.float32) - sample.image).mean(axis=2)
        # leave out the legend's corner and the objects' borders
        h, w = change.shape
        keep = np.ones((h, w), bool)
        keep[: h // 2, : w // 2] = False
        objects = (sample.mask > 0) & (sample.mask != VOID)
        far = cv2.dilate(objects.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
        inside.append(change[objects & keep].mean())
        outside.append(change[far & keep].mean())
    return float(np.mean(inside)), float(np.mean(outside))


def test_overlay_shows_the_objects_and_leaves_the_rest_of_the_photo() -> None:
    hot, cold = _visibility()
    assert hot >= 40 and cold <= 15, (hot, cold)


def test_overlay_alpha_follows_the_map() -> None:
    """Alpha rises smoothly with the map: 0 at 0, half the opacity at a quarter of the peak,
    all of it from half the peak on (maps.colour.overlay_alpha; a linear alpha left the
    objects of real photos faint, see test_render_photos.py)."""
    from cam_rt.runtime.maps.colour import overlay_colours

    maps = np.zeros((6, 8, 1), np.float32)
    maps[:, 5:, 0] = 1.0
    maps[:, 2, 0] = 0.25
    maps[:, 3, 0] = 0.5
    big = np.repeat(np.repeat(maps, 10, axis=0), 10, axis=1)
    result = CamResult(np.zeros(3, np.float32), np.full(3, 0.5, np.float32), (1,), ("dog",), big)
    image = np.full((60, 80, 3), 100, np.uint8)
    rendered = render("x", result, image, RenderConfig(overlay_alpha=1.0))
    colour = overlay_colours((1,))[0].tolist()
    assert rendered.overlay is not None
    assert rendered.overlay[55, 15].tolist() == [100, 100, 100]  # map 0: the photo
    assert rendered.overlay[55, 75].tolist() == colour  # map 1: the class colour
    assert rendered.overlay[55, 35].tolist() == colour  # map 0.5: the class colour too
    half = [round(50 + c / 2) for c in colour]
    assert np.abs(rendered.overlay[55, 25].astype(int) - half).max() <= 1  # map 0.25: halfway


def test_strongest_class_colours_each_pixel() -> None:
    from cam_rt.runtime.maps.colour import alpha_overlay, overlay_colours

    maps = np.zeros((2, 2, 2), np.float32)
    maps[0, 0] = (1.0, 0.4)
    maps[0, 1] = (0.3, 1.0)
    out = alpha_overlay(np.zeros((2, 2, 3), np.uint8), maps, (0, 7), opacity=1.0)
    colours = overlay_colours((0, 7))
    assert out[0, 0].tolist() == colours[0].tolist()
    assert out[0, 1].tolist() == colours[1].tolist()
    assert out[1, 1].tolist() == [0, 0, 0]


def test_colors_kind_is_the_additive_picture() -> None:
    from cam_rt.runtime.maps.colour import blend, class_overlay

    image = np.full((6, 8, 3), 100, np.uint8)
    rendered = render("x", _result(), image, RenderConfig(save=("colors",)))
    with Image.open(io.BytesIO(rendered.encoded("colors"))) as im:
        got = np.asarray(im)
    expected = blend(image, class_overlay(_result().maps, (0, 2)), 0.5)
    np.testing.assert_array_equal(got, expected)
    assert got[1, 1].tolist() == [114, 50, 50]


def test_heatmap_row_has_one_labelled_panel_per_class() -> None:
    image = np.full((40, 50, 3), 90, np.uint8)
    maps = np.zeros((40, 50, 2), np.float32)
    result = CamResult(
        np.zeros(3, np.float32),
        np.asarray([0.9, 0.1, 0.6], np.float32),
        (0, 2),
        ("cat", "dog"),
        maps,
    )
    rendered = render("x", result, image, RenderConfig(save=("heatmap",)))
    with Image.open(io.BytesIO(rendered.encoded("heatmap"))) as im:
        row = np.asarray(im)
    assert row.shape[1] == 2 * 50 and row.shape[0] > 40  # side by side, a label strip on top
    strip = row.shape[0] - 40
    left, right = row[:strip, :50], row[:strip, 50:]
    assert (left != left[0, 0]).any() and not np.array_equal(left, right)  # text drawn, differs
    from cam_rt.runtime.maps.colour import heatmap_overlay

    np.testing.assert_array_equal(row[strip:, :50], heatmap_overlay(image, maps[..., 0]))


def test_boxes_picture_draws_each_box_in_its_class_colour() -> None:
    from cam_rt.runtime.maps.colour import overlay_colours

    image = np.zeros((60, 80, 3), np.uint8)
    maps = np.zeros((60, 80, 1), np.float32)
    maps[30:50, 40:70, 0] = 1.0
    result = CamResult(np.zeros(1, np.float32), np.ones(1, np.float32), (0,), ("cat",), maps)
    rendered = render("x", result, image, RenderConfig(save=("boxes",)))
    assert [kind for kind in ("boxes",) if output_path(Path("o"), "x", kind)]
    with Image.open(io.BytesIO(rendered.encoded("boxes.png"))) as im:
        pic = np.asarray(im)
    colour = overlay_colours((0,))[0].tolist()
    assert pic[40, 40].tolist() == colour and pic[49, 55].tolist() == colour  # the edges
    assert pic[40, 55].tolist() == [0, 0, 0]  # inside: the photo
    assert (pic[20:30, 40:70] != 0).any()  # the label above the box


def test_boxes_kind_writes_json_and_picture(tmp_path: Path) -> None:
    rendered = render("x", _result(), np.zeros((6, 8, 3), np.uint8), RenderConfig(save=("boxes",)))
    written = write_outputs(tmp_path, rendered, ("boxes",))
    assert written == ["x.boxes.json", "x.boxes.png"]
    assert (tmp_path / "x.boxes.png").is_file()


def _many(classes: int, explained: tuple[int, ...]) -> CamResult:
    maps = np.zeros((8, 10, len(explained)), np.float32)
    for c in range(len(explained)):
        maps[c : c + 1, :, c] = 1.0
    scores = np.zeros(classes, np.float32)
    return CamResult(
        scores, np.full(classes, 0.5, np.float32), explained, tuple(map(str, explained)), maps
    )


def test_seeds_of_many_classes_are_16_bit_with_a_preview(tmp_path: Path) -> None:
    result = _many(300, (3, 280, 299))
    rendered = render("x", result, np.zeros((8, 10, 3), np.uint8), RenderConfig(save=("seeds",)))
    written = write_outputs(tmp_path, rendered, ("seeds",))
    assert written == ["x.seeds.png", "x.seeds.preview.png"]
    with Image.open(tmp_path / "x.seeds.png") as im:
        assert im.mode.startswith("I")
        labels = np.asarray(im).astype(np.int64)
    assert labels[0, 0] == 4 and labels[1, 0] == 281 and labels[2, 0] == 300
    assert labels[5, 0] == 0
    with Image.open(tmp_path / "x.seeds.preview.png") as im:
        assert im.mode == "RGB" and im.size == (10, 8)


def test_seeds_of_few_classes_stay_a_palette_png(tmp_path: Path) -> None:
    rendered = render("x", _many(254, (253,)), np.zeros((8, 10, 3), np.uint8), RenderConfig())
    written = write_outputs(tmp_path, rendered, ("seeds",))
    assert written == ["x.seeds.png"]
    with Image.open(tmp_path / "x.seeds.png") as im:
        assert im.mode == "P" and np.asarray(im)[0, 0] == 254


def test_one_kind_failing_keeps_the_others(tmp_path: Path) -> None:
    result = _result()
    bad = CamResult(result.scores, result.probabilities, (0, 2), ("cat", "dog"), result.maps)
    rendered = render("x", bad, np.zeros((6, 8, 3), np.uint8), RenderConfig(save=ALL))
    (tmp_path / "x.seeds.png").mkdir()  # a folder in the way of one kind
    written = write_outputs(tmp_path, rendered, ("overlay", "seeds", "maps"))
    assert written == ["x.overlay.png", "x.maps.npz"]
    assert list(rendered.output_errors) == ["seeds"]
    assert "x.seeds.png" in rendered.output_errors["seeds"]
    assert "\n" not in rendered.output_errors["seeds"]


def test_kinds_that_cannot_work_with_the_model_are_refused() -> None:
    from cam_rt.runtime.batch.render import check_kinds

    check_kinds(("seeds", "overlay"), 65534)
    with pytest.raises(ConfigError, match=r"--save seeds .*70000 classes"):
        check_kinds(("overlay", "seeds"), 70000)
