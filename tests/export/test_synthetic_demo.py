"""The synthetic set (determinism, masks vs labels) and the demo path end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cam_rt.export.synthetic import SHAPES, VOID, generate, write_voc
from cam_rt.runtime.tools.evaluate import read_mask


def test_generator_is_deterministic() -> None:
    a, b = generate(6, 7), generate(6, 7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)
        assert x.labels == y.labels
    c = generate(6, 8)
    assert any(
        x.image.shape != z.image.shape or not np.array_equal(x.image, z.image)
        for x, z in zip(a, c, strict=True)
    )


def test_masks_and_labels_agree() -> None:
    for s in generate(40, 3):
        h, w = s.mask.shape
        assert 96 <= h <= 192 and 96 <= w <= 192 and s.image.shape == (h, w, 3)
        values = set(np.unique(s.mask).tolist())
        assert values <= {0, *range(1, len(SHAPES) + 1), VOID}
        present = {v - 1 for v in values if 0 < v < VOID and np.count_nonzero(s.mask == v) >= 20}
        assert set(s.labels) == present and 1 <= len(s.labels) <= 3
        assert np.count_nonzero(s.mask == VOID) > 0  # object borders are ignored
    assert generate(2, 3, size=(64, 80))[0].image.shape == (64, 80, 3)


def test_voc_layout(tmp_path: Path) -> None:
    samples = generate(3, 5)
    ids = write_voc(tmp_path, samples, "val")
    assert (tmp_path / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == ids
    labels = json.loads((tmp_path / "labels.json").read_text())
    for name, sample in zip(ids, samples, strict=True):
        np.testing.assert_array_equal(
            read_mask(tmp_path / "SegmentationClass" / f"{name}.png"), sample.mask
        )
        assert labels[name] == [SHAPES[c] for c in sample.labels]


def test_demo_end_to_end(tmp_path: Path) -> None:
    """The README's main job on a few images: export, run with TTA, evaluate."""
    pytest.importorskip("tensorflow")
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cam_rt.export.demo",
            "--out",
            str(out),
            "--count",
            "12",
            "--show",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "demo.onnx").is_file() and (out / "grid.png").is_file()
    assert len(list((out / "maps").glob("*.seeds.png"))) == 3
    report = json.loads((out / "eval.json").read_text())
    assert report["images"] == 12 and 0.0 < report["miou"] <= 1.0
    assert set(report["per_class_iou"]) == {"background", *SHAPES}


def test_committed_weights_classify_the_held_out_split() -> None:
    """The weights in export/data fit the architecture and are trained (not random)."""
    pytest.importorskip("tensorflow")
    from cam_rt.export.train_demo import (
        HELD_OUT_SEED,
        load_demo_model,
        mean_average_precision,
    )

    model = load_demo_model()
    samples = generate(60, HELD_OUT_SEED)
    scores = np.stack(
        [np.asarray(model(s.image[None].astype(np.float32), training=False))[0] for s in samples]
    )
    truth = np.zeros_like(scores)
    for i, s in enumerate(samples):
        truth[i, list(s.labels)] = 1
    assert mean_average_precision(scores, truth) >= 0.8  # random weights: about 0.3


def test_mean_average_precision_known_answer() -> None:
    from cam_rt.export.train_demo import mean_average_precision

    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6], [0.1, 0.2]])
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    # class 0: ranks 1 (hit), 2, 3 (hit) -> AP (1 + 2/3) / 2; class 1: ranks 1, 2 both hits -> 1
    assert mean_average_precision(scores, labels) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
