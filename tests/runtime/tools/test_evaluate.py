"""Seed evaluation (OC-CSE protocol): known answers on hand-made masks, and `cam-rt eval`."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cam_rt.runtime.backend.session import CamSession
from cam_rt.runtime.batch.io import encode_palette_png
from cam_rt.runtime.cli import get_app
from cam_rt.runtime.errors import ConfigError, InputError
from cam_rt.runtime.explain import ClassSelection, ExplainConfig, Explainer
from cam_rt.runtime.tools import evaluate
from cam_rt.runtime.tools.evaluate import (
    DEFAULT_THRESHOLDS,
    MAX_THRESHOLDS,
    SeedScorer,
    iou_from_confusion,
    parse_thresholds,
    voc_items,
)
from tests.onnx_models import channel_model


def _mask() -> np.ndarray:
    mask = np.zeros((4, 6), np.uint8)
    mask[:2, :3] = 1
    mask[2:, 3:] = 2
    return mask


def _one_hot(mask: np.ndarray, class_ids: list[int]) -> np.ndarray:
    return np.stack([(mask == c + 1).astype(np.float32) for c in class_ids], axis=2)


def test_default_thresholds() -> None:
    assert DEFAULT_THRESHOLDS[0] == 0.10 and DEFAULT_THRESHOLDS[-1] == 0.39
    assert len(DEFAULT_THRESHOLDS) == 30


def test_perfect_prediction_is_one() -> None:
    scorer = SeedScorer(3, (0.5,))
    mask = _mask()
    scorer.add(_one_hot(mask, [0, 1]), [0, 1], mask)
    report = scorer.report(["a", "b"])
    assert report.miou == pytest.approx(1.0)
    assert report.per_class == pytest.approx({"background": 1.0, "a": 1.0, "b": 1.0})


def test_all_background() -> None:
    scorer = SeedScorer(3, (0.5,))
    mask = _mask()
    scorer.add(np.zeros((4, 6, 2), np.float32), [0, 1], mask)
    report = scorer.report(["a", "b"])
    # background: TP 12, T 12, P 24 -> 12 / 24; classes: 0
    assert report.per_class["background"] == pytest.approx(0.5)
    assert report.per_class["a"] == 0 and report.per_class["b"] == 0
    assert report.miou == pytest.approx(0.5 / 3)


def test_ignored_pixels_do_not_count() -> None:
    mask = _mask()
    mask[0, 0] = mask[3, 5] = 255
    maps = _one_hot(_mask(), [0, 1])
    maps[0, 0] = [0, 1]  # wrong, but on an ignored pixel
    scorer = SeedScorer(3, (0.5,))
    scorer.add(maps, [0, 1], mask)
    assert scorer.report(["a", "b"]).miou == pytest.approx(1.0)


def test_class_absent_from_both_counts_zero_and_is_named() -> None:
    scorer = SeedScorer(4, (0.5,))
    mask = _mask()
    scorer.add(_one_hot(mask, [0, 1]), [0, 1], mask)
    report = scorer.report(["a", "b", "c"])
    assert report.per_class["c"] == 0
    assert report.miou == pytest.approx(3 / 4)  # OC-CSE: mean over every class
    assert report.absent == ("c",)


def test_ties_go_to_background_and_sweep_finds_best() -> None:
    mask = np.asarray([[0, 1]], np.uint8)
    maps = np.asarray([[[0.2], [0.3]]], np.float32)
    scorer = SeedScorer(2, (0.2, 0.25, 0.3))
    scorer.add(maps, [0], mask)
    report = scorer.report(["a"])
    # t = .2: pixel 0 ties -> background (right), pixel 1 -> a (right): perfect
    assert report.best_threshold == 0.2 and report.miou == pytest.approx(1.0)
    assert report.by_threshold[0.3] == pytest.approx(0.25)  # everything background: bg 1/2, a 0


def test_iou_and_errors() -> None:
    np.testing.assert_allclose(iou_from_confusion(np.asarray([[3, 1], [0, 2]])), [0.75, 2 / 3])
    with pytest.raises(ConfigError, match="thresholds is empty"):
        SeedScorer(2, ())
    scorer = SeedScorer(2, (0.5,))
    with pytest.raises(InputError, match="mask has label 5"):
        scorer.add(np.zeros((1, 1, 1), np.float32), [0], np.full((1, 1), 5, np.uint8))
    with pytest.raises(InputError, match="differ in size"):
        scorer.add(np.zeros((2, 1, 1), np.float32), [0], np.zeros((1, 1), np.uint8))


def _voc(root: Path, count: int = 4) -> None:
    """Images whose red/green/blue squares are classes 1/2/3 (the channel model sees them)."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = []
    for i in range(count):
        image = np.zeros((24, 32, 3), np.uint8)
        mask = np.zeros((24, 32), np.uint8)
        for c in rng.choice(3, size=2, replace=False):
            y, x = int(rng.integers(0, 14)), int(rng.integers(0, 22))
            image[y : y + 10, x : x + 10] = 0
            image[y : y + 10, x : x + 10, c] = 255
            mask[y : y + 10, x : x + 10] = c + 1
        name = f"im{i}"
        ids.append(name)
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.png")
        (root / "SegmentationClass" / f"{name}.png").write_bytes(encode_palette_png(mask))
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")


def _rgb_model_and_voc(tmp_path: Path) -> tuple[Path, Path]:
    """The three-channel model (its maps are the colour squares) and a four-image VOC tree."""
    model = channel_model(tmp_path / "m.onnx", channels=3, offset=0.0, class_names=("r", "g", "b"))
    _voc(tmp_path / "voc")
    return model, tmp_path / "voc"


def _eval_args(model: Path, voc: Path, *extra: str) -> list[str]:
    return ["eval", str(model), "--voc-root", str(voc), "--split", "val", *extra]


def test_eval_command(tmp_path: Path) -> None:
    model, voc = _rgb_model_and_voc(tmp_path)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(get_app(), _eval_args(model, voc, "--json", str(out), "-q"))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == 4 and report["labels"] == "ground truth"
    assert report["miou"] > 0.99  # the channel model's maps are the squares themselves
    assert "mIoU" in result.stdout
    missing = CliRunner().invoke(
        get_app(), ["eval", str(model), "--voc-root", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    (tmp_path / "l.json").write_text(json.dumps({"im0": ["r"]}))
    partial = CliRunner().invoke(
        get_app(), _eval_args(model, voc, "--labels", str(tmp_path / "l.json"))
    )
    assert partial.exit_code == 1 and "no entry for 3 image(s), first 'im1'" in partial.stderr
    neither = CliRunner().invoke(get_app(), ["eval", str(model)])
    assert neither.exit_code == 1 and "give --voc-root DIR" in neither.stderr


REPO = Path(__file__).resolve().parents[3]


def test_docstrings_state_facts_and_name_only_files_of_the_repository() -> None:
    """The tools' and the planner's docstrings may point to files, but only to ones shipped here."""
    sources = [*sorted((REPO / "runtime" / "tools").glob("*.py")), REPO / "runtime" / "plan.py"]
    for source in sources:
        tree = ast.parse(source.read_text())
        nodes = [
            tree,
            *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)),
        ]
        for node in nodes:
            doc = ast.get_docstring(node) or ""
            for name in re.findall(r"[\w.-]+(?:/[\w.-]+)+\.(?:md|py|txt|json|yaml)\b", doc):
                assert (REPO / name).exists(), f"{source.name}: {name} is not in the repository"
    doc = evaluate.__doc__ or ""
    assert "background winning ties" in doc and "semantics.md" not in doc


def _explainer(tmp_path: Path) -> Explainer:
    model = channel_model(tmp_path / "m.onnx", channels=3, offset=0.0, class_names=("r", "g", "b"))
    return Explainer(CamSession(model), ExplainConfig(classes=ClassSelection("all")))


def _voc_items(root: Path) -> list[evaluate.EvalItem]:
    return voc_items(root / "JPEGImages", root / "SegmentationClass")


def test_bad_images_and_masks_are_reported_and_the_rest_scored(tmp_path: Path) -> None:
    """One bad image never takes the evaluation down: each is reported (event and report) with
    what was wrong, the others are scored."""
    _voc(tmp_path / "voc")
    (tmp_path / "voc" / "JPEGImages" / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    mask = tmp_path / "voc" / "SegmentationClass" / "im2.png"
    labels = np.zeros((24, 32), np.uint8)
    labels[0, 0] = 17  # class id 16: the model has 3 classes
    mask.write_bytes(encode_palette_png(labels))
    events: list[tuple[str, Any]] = []
    report = evaluate.evaluate(
        _explainer(tmp_path),
        _voc_items(tmp_path / "voc"),
        events=lambda k, d: events.append((k, d)),
    )
    image = tmp_path / "voc" / "JPEGImages" / "im1.png"
    expected = (
        ("im1", f"{image} is not an image Pillow can read"),
        (
            "im2",
            f"mask {mask} has label 17 (class id 16), but the model has 3 classes (labels "
            "1..3; 0 is background, 255 ignored): check that the masks go with this model",
        ),
    )
    assert report.images == 2 and report.failed == expected
    assert [d["record"] for k, d in events if k == "failed"] == [
        {"name": n, "error": e} for n, e in expected
    ]
    assert [d["record"]["name"] for k, d in events if k == "done"] == ["im0", "im3"]
    assert report.to_json()["failed"] == [{"name": n, "error": e} for n, e in expected]
    assert "2 images failed and were not scored; first im1: " in report.table()


def test_nothing_scored_is_an_error(tmp_path: Path) -> None:
    _voc(tmp_path / "voc", count=2)
    for path in (tmp_path / "voc" / "JPEGImages").iterdir():
        path.write_bytes(b"")
    with pytest.raises(InputError, match=r"no image could be scored: all 2 failed, first im0: "):
        evaluate.evaluate(_explainer(tmp_path), _voc_items(tmp_path / "voc"))


def test_the_threshold_sweep_is_bounded() -> None:
    assert MAX_THRESHOLDS == 1000
    assert parse_thresholds("0.10:0.40:0.01") == DEFAULT_THRESHOLDS
    assert parse_thresholds("0.2, 0.3") == (0.2, 0.3)
    assert len(parse_thresholds("0:1:0.001")) == 1000
    with pytest.raises(ConfigError) as info:  # counted, not built: 10^12 values
        parse_thresholds("0:1:1e-12")
    assert str(info.value) == (
        "--thresholds '0:1:1e-12' gives 1000000000000 thresholds; at most 1000 are swept (each "
        "keeps a confusion matrix): use a coarser step, e.g. 0.10:0.40:0.01"
    )
    with pytest.raises(ConfigError, match="START:STOP:STEP"):
        parse_thresholds("0:1:nan")
    with pytest.raises(ConfigError, match=r"--thresholds gives 1001 thresholds; at most 1000"):
        SeedScorer(3, [0.5] * 1001)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_eval_reports_a_corrupt_image_in_a_real_run(tmp_path: Path) -> None:
    model, voc = _rgb_model_and_voc(tmp_path)
    image = voc / "JPEGImages" / "im2.png"
    image.write_bytes(image.read_bytes()[:60])  # truncated
    out = tmp_path / "report.json"
    proc = _cli(*_eval_args(model, voc, "--json", str(out), "-q"))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2  # as for run: some inputs failed
    assert f"cam-rt: failed: im2: {image}: corrupt or truncated image data" in proc.stderr
    report = json.loads(out.read_text())
    assert report["images"] == 3 and [f["name"] for f in report["failed"]] == ["im2"]


def test_eval_json_through_a_link_to_stdout_is_refused(tmp_path: Path) -> None:
    """Links are followed; /dev/stdout leads to the pipe the test reads, which is not a regular
    file: refused in one line, the link left as it was."""
    model, voc = _rgb_model_and_voc(tmp_path)
    link = tmp_path / "report.json"
    link.symlink_to("/dev/stdout")
    proc = _cli(*_eval_args(model, voc, "--json", str(link), "-q"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"cam-rt: error: output {link} is a FIFO (named pipe) (through the symlink to "
        "/dev/stdout): cam-rt replaces only regular files; give the path of a file"
    )
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"
