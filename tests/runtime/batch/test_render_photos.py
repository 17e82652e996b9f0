"""Overlay visibility on real photos (tests/data/photos: CC0 and public-domain photos from
scikit-image): ``cam-rt run --save overlay,maps`` with the trained demo model, measured on the
saved files. The mean colour change |overlay - photo| must be >= 40 in each photo's hot region
(the top 20% of its map) and <= 15 in the cold region (the bottom half), the legend's box left
out (it is drawn over the photo on purpose). An alpha linear in the map gave 24-32 in the hot
region of these photos; the smooth curve that is full from half the peak gives 46-59."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime.batch.io import read_image
from cam_rt.runtime.maps.colour import overlay_colours
from cam_rt.runtime.maps.legend import legend_box

PHOTOS = Path(__file__).resolve().parents[2] / "data" / "photos"
NAMES = ("astronaut", "cat", "coffee", "rocket")
SCRIPT = Path(sys.executable).with_name("cam-rt")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The demo model exported, then run on the photos as a user runs it; its output folder
    and records by name."""
    pytest.importorskip("tensorflow")
    from cam_rt.export import ExportConfig, export_model
    from cam_rt.export.synthetic import SHAPES
    from cam_rt.export.train_demo import load_demo_model

    folder = tmp_path_factory.mktemp("photos")
    (folder / "classes.txt").write_text("\n".join(SHAPES) + "\n")
    model = folder / "demo.onnx"
    export_model(load_demo_model(), model, ExportConfig(classes=str(folder / "classes.txt")))
    out = folder / "out"
    cmd = [str(SCRIPT), "run", str(model), str(PHOTOS), "-o", str(out), "-q"]
    cmd += ["--save", "overlay,maps", "--classes", "top-1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    records = {r["name"]: r for r in map(json.loads, lines)}
    assert sorted(records) == sorted(NAMES)
    return out, records


@pytest.mark.parametrize("name", NAMES)
def test_overlay_shows_the_map_on_a_photo(
    run: tuple[Path, dict[str, dict[str, Any]]], name: str
) -> None:
    out, records = run
    photo = read_image(PHOTOS / f"{name}.jpg").pixels.astype(np.float32)
    with Image.open(out / f"{name}.overlay.png") as im:
        overlay = np.asarray(im.convert("RGB")).astype(np.float32)
    with np.load(out / f"{name}.maps.npz") as npz:
        strongest = npz["maps"].astype(np.float32).max(axis=2)
    assert overlay.shape == photo.shape and strongest.shape == photo.shape[:2]
    assert strongest.max() > 0.9 and strongest.min() < 0.05  # a normalised map, not flat
    entries = [
        (c["name"], c["probability"], overlay_colours([c["id"]])[0])
        for c in records[name]["classes"]
    ]
    box_w, box_h = legend_box(photo.shape[0], photo.shape[1], entries)
    assert box_w and box_h  # the saved file has its legend: measured beside it
    measured = np.ones(strongest.shape, bool)
    measured[:box_h, :box_w] = False
    change = np.abs(overlay - photo).mean(axis=2)
    hot = (strongest >= np.quantile(strongest, 0.8)) & measured
    cold = (strongest <= np.quantile(strongest, 0.5)) & measured
    assert hot.sum() > 1000 and cold.sum() > 1000
    assert change[hot].mean() >= 40, change[hot].mean()
    assert change[cold].mean() <= 15, change[cold].mean()


def test_top5_are_named_with_the_models_class_names(
    run: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    from cam_rt.export.synthetic import SHAPES

    for record in run[1].values():
        top5 = record["top5"]
        assert len(top5) == 5 and len(record["classes"]) == 1
        assert [t["name"] for t in top5] == [SHAPES[t["id"]] for t in top5]
