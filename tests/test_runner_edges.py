"""Runner edge cases: interrupts while collecting, outputs inside inputs, names, grid, labels."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cam_rt.runtime import CamSession, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.cli import _parse_thresholds, get_app
from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.runner import RunConfig, Runner, discover_inputs

from .onnx_models import channel_model

runner = CliRunner()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return channel_model(
        tmp_path / "m.onnx", channels=3, offset=0.4, class_names=("red", "green", "blue")
    )


def _images(folder: Path, n: int, size: tuple[int, int] = (24, 32)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            folder / f"img{i:02d}.png"
        )


class InterruptOnce(Runner):
    """Raises KeyboardInterrupt while waiting for the 3rd write, as Ctrl-C there would."""

    calls = 0

    def _collect(self, *args: Any) -> None:
        InterruptOnce.calls += 1
        if InterruptOnce.calls == 3:
            raise KeyboardInterrupt
        super()._collect(*args)


def test_interrupt_while_collecting_keeps_every_record(tmp_path: Path, model: Path) -> None:
    _images(tmp_path / "in", 12)
    items = discover_inputs([tmp_path / "in"])
    explainer = Explainer(CamSession(model), ExplainConfig(TTAConfig((1.0,), True), batch_size=2))
    out = tmp_path / "out"
    summary = InterruptOnce(explainer, out, RunConfig(write_workers=1)).run(items)
    assert summary.interrupted
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    written = {p.name.split(".")[0] for p in out.glob("*.overlay.png")}
    assert {r["name"] for r in records} == written  # no image with files but without a line
    resumed = Runner(explainer, out, RunConfig(skip_existing=True)).run(items)
    assert resumed.exit_code == 0
    final = [json.loads(line)["name"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert final == [item.name for item in items]


def test_skip_existing_needs_a_record(tmp_path: Path, model: Path) -> None:
    """Files without a results line (a killed run) are redone, not skipped."""
    _images(tmp_path / "in", 2)
    items = discover_inputs([tmp_path / "in"])
    explainer = Explainer(CamSession(model))
    out = tmp_path / "out"
    Runner(explainer, out).run(items)
    (out / "results.jsonl").write_text("")
    summary = Runner(explainer, out, RunConfig(skip_existing=True)).run(items)
    assert (summary.skipped, summary.done) == (0, 2)


def test_output_folder_inside_the_inputs(tmp_path: Path, model: Path) -> None:
    _images(tmp_path / "nest", 2)
    for _ in range(2):
        result = runner.invoke(
            get_app(),
            ["run", str(model), str(tmp_path / "nest"), "-o", str(tmp_path / "nest" / "out"), "-q"],
        )
        assert result.exit_code == 0
    assert not (tmp_path / "nest" / "out" / "out").exists()
    lines = (tmp_path / "nest" / "out" / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["name"] for line in lines) == ["img00", "img01"]


def test_names_never_collide(tmp_path: Path) -> None:
    folder = tmp_path / "col"
    folder.mkdir()
    for name in ("x.png", "x.jpg", "x.png.jpg"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / name, format="PNG")
    names = [i.name for i in discover_inputs([folder])]
    assert len(set(names)) == 3, names


def test_symlink_keeps_its_own_name(tmp_path: Path) -> None:
    _images(tmp_path / "a", 1)
    _images(tmp_path / "other", 1, size=(8, 8))
    os.symlink(tmp_path / "other" / "img00.png", tmp_path / "a" / "linked.png")
    names = [i.name for i in discover_inputs([tmp_path / "a"])]
    assert names == ["img00", "linked"]


def test_bad_grid_labels_and_save_exit_one(tmp_path: Path, model: Path) -> None:
    _images(tmp_path / "in", 1)
    base = ["run", str(model), str(tmp_path / "in"), "-o", str(tmp_path / "o")]
    folder_grid = runner.invoke(get_app(), [*base, "--grid", str(tmp_path)])
    assert folder_grid.exit_code == 1 and "--grid" in folder_grid.stderr
    (tmp_path / "labels.json").write_text(json.dumps({"img00": ["purple"]}))
    labels = runner.invoke(get_app(), [*base, "--labels", str(tmp_path / "labels.json")])
    assert labels.exit_code == 1 and "class 'purple'" in labels.stderr
    empty = runner.invoke(get_app(), [*base, "--save", ""])
    assert empty.exit_code == 1 and "--save is empty" in empty.stderr


def test_threshold_ranges() -> None:
    assert _parse_thresholds("0:0.25:0.1") == (0.0, 0.1, 0.2)
    assert _parse_thresholds("0.10:0.40:0.01")[-1] == 0.39
    assert _parse_thresholds("0.2,0.3") == (0.2, 0.3)
    with pytest.raises(ConfigError, match="START:STOP:STEP"):
        _parse_thresholds("0.4:0.1:0.1")
