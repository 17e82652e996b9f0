"""The local engine and the run frame: records, interrupts while collecting, resume, the write
queue, output folders, names, and the CLI's exits on bad options."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.batch.inputs import InputItem
from cam_rt.runtime.batch.io import LoadedImage
from cam_rt.runtime.batch.journal import Journal
from cam_rt.runtime.batch.records import Ledger, RunSummary
from cam_rt.runtime.batch.runner import RunConfig, Runner, Writer, discover_inputs
from cam_rt.runtime.batch.steps import Explained
from cam_rt.runtime.cli import get_app
from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.explain import CamResult
from tests.onnx_models import channel_model

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


def _lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_records_and_files_of_a_run(tmp_path: Path, model: Path) -> None:
    _images(tmp_path / "in", 3)
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    items = discover_inputs([tmp_path / "in"])
    events: list[str] = []
    explainer = Explainer(CamSession(model), ExplainConfig(classes=ClassSelection("all")))
    config = RunConfig(save=("overlay", "boxes"))
    summary = Runner(explainer, tmp_path / "out", config, events=lambda k, _: events.append(k)).run(
        items
    )
    assert (summary.total, summary.done, summary.failed, summary.exit_code) == (4, 3, 1, 2)
    assert events[0] == "start" and events.count("done") == 3 and events.count("failed") == 1
    records = _lines(tmp_path / "out")
    assert [r["name"] for r in records] == ["bad", "img00", "img01", "img02"]
    assert "not an image" in records[0]["error"]
    first = records[1]
    assert first["outputs"] == ["img00.overlay.png", "img00.boxes.json", "img00.boxes.png"]
    assert first["size"] == [24, 32] and [c["name"] for c in first["classes"]] == [
        "red",
        "green",
        "blue",
    ]
    assert set(first["timings"]) == {"decode_s", "explain_s", "write_s"}
    boxes = json.loads((tmp_path / "out" / "img00.boxes.json").read_text())
    assert [b["box"] for b in first["boxes"]] == [b["largest"] for b in boxes["boxes"]]
    assert not (tmp_path / "out" / ".results.journal.jsonl").exists()


def test_interrupt_while_collecting_keeps_every_record(tmp_path: Path, model: Path) -> None:
    """Ctrl-C while the 3rd image is being recorded (its line written, its event not done):
    every image with files has its line, once, and a resumed run finishes the rest."""
    _images(tmp_path / "in", 12)
    items = discover_inputs([tmp_path / "in"])
    explainer = Explainer(CamSession(model), ExplainConfig(TTAConfig((1.0,), True), batch_size=2))
    out = tmp_path / "out"
    done = []

    def interrupt_on_third(kind: str, data: Mapping[str, Any]) -> None:
        if kind == "done":
            done.append(data["record"]["name"])
            if len(done) == 3:
                raise KeyboardInterrupt

    config = RunConfig(write_workers=1)
    summary = Runner(explainer, out, config, events=interrupt_on_third).run(items)
    assert summary.interrupted and summary.exit_code == 130
    records = _lines(out)
    written = {p.name.split(".")[0] for p in out.glob("*.overlay.png")}
    assert {r["name"] for r in records} == written  # no image with files but without a line
    assert len(records) == summary.done < len(items)  # each recorded once
    resumed = Runner(explainer, out, RunConfig(skip_existing=True)).run(items)
    assert resumed.exit_code == 0 and resumed.skipped == summary.done
    assert [r["name"] for r in _lines(out)] == [item.name for item in items]


def _explained(name: str, folder: Path) -> Explained:
    maps = np.zeros((4, 4, 1), np.float32)
    maps[1:3, 1:3, 0] = 1.0
    result = CamResult(np.zeros(2, np.float32), np.zeros(2, np.float32), (0,), ("a",), maps)
    image = LoadedImage(np.zeros((4, 4, 3), np.uint8), ())
    return Explained(InputItem(folder / f"{name}.png", name), result, image, {"decode_s": 0.0})


class SlowSheet:
    """A grid sheet whose ``add`` (the last part of an image's write) waits for x0's release."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def add(self, name: str, *_: Any) -> None:
        if name == "x0":
            self.started.set()
            self.release.wait(10)


def test_writer_after_an_interrupt_finishes_started_writes_only(tmp_path: Path) -> None:
    """x0's write runs, x1's and x2's wait: an interrupted drain waits for x0 and records it,
    and cancels the others, so no image has files without a record."""
    summary = RunSummary()
    sheet, gate = SlowSheet(), threading.Event()
    config = RunConfig(save=("overlay",), write_workers=1)
    with Journal(tmp_path) as journal, ThreadPoolExecutor(1) as pool:
        ledger = Ledger(journal, summary, lambda *_: None)
        writer = Writer(pool, tmp_path, config, ledger, sheet)  # type: ignore[arg-type]
        writer.put(_explained("x0", tmp_path))
        assert sheet.started.wait(10)
        pool.submit(gate.wait, 10)  # holds the thread after x0: x1 and x2 do not start
        writer.put(_explained("x1", tmp_path))
        writer.put(_explained("x2", tmp_path))
        threading.Timer(0.1, sheet.release.set).start()
        writer.drain(interrupted=True)
        gate.set()
    records = Journal(tmp_path).merge([], keep_results=False)
    assert list(records) == ["x0"] and summary.done == 1
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["x0.overlay.png"]


def test_writer_records_in_order_and_bounds_its_queue(tmp_path: Path) -> None:
    names: list[str] = []

    def done(kind: str, data: Mapping[str, Any]) -> None:
        names.append(data["record"]["name"])

    config = RunConfig(save=("overlay",), write_workers=2)
    with Journal(tmp_path) as journal, ThreadPoolExecutor(2) as pool:
        writer = Writer(pool, tmp_path, config, Ledger(journal, RunSummary(), done))
        for i in range(20):
            writer.put(_explained(f"x{i:02d}", tmp_path))
            assert i + 1 - len(names) <= 4 * config.write_workers  # images waiting
        writer.drain()
    assert names == [f"x{i:02d}" for i in range(20)]


def test_images_per_call(tmp_path: Path, model: Path) -> None:
    """--batch-size is model inputs per ONNX Runtime run; images_per_call the images per
    explain call (by default the same number)."""
    _images(tmp_path / "in", 5)
    items = discover_inputs([tmp_path / "in"])
    calls: list[int] = []
    explainer = Explainer(CamSession(model), ExplainConfig(batch_size=2))
    explain = explainer.explain

    def counting(images: Any, **kw: Any) -> list[CamResult]:
        calls.append(len(images))
        results: list[CamResult] = explain(images, **kw)
        return results

    explainer.explain = counting  # type: ignore[method-assign]
    Runner(explainer, tmp_path / "a").run(items)
    assert calls == [2, 2, 1]
    calls.clear()
    Runner(explainer, tmp_path / "b", RunConfig(images_per_call=4)).run(items)
    assert calls == [4, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"save": ()}, "--save is empty"),
        ({"max_pixels": 0}, "--max-pixels 0 must be positive"),
        ({"decode_workers": 0}, "decode_workers 0 must be an integer >= 1"),
        ({"images_per_call": 0}, "images_per_call 0 must be an integer >= 1"),
    ],
)
def test_bad_run_config(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kwargs)


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


def test_names_differing_in_case_write_different_files(tmp_path: Path, model: Path) -> None:
    folder = tmp_path / "in"
    _images(folder, 2)
    (folder / "img00.png").rename(folder / "IMG.png")
    (folder / "img01.png").rename(folder / "img.png")
    if len(list(folder.iterdir())) != 2:
        pytest.skip("this file system ignores case")
    out = tmp_path / "out"
    summary = Runner(Explainer(CamSession(model)), out).run(discover_inputs([folder]))
    assert summary.done == 2
    files = [p.name for p in out.iterdir() if p.name != "results.jsonl"]
    assert len({f.casefold() for f in files}) == len(files) == 4, files


def test_unwritable_output_folder(tmp_path: Path, model: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not writable"):
        Runner(Explainer(CamSession(model)), tmp_path / "file" / "out").run([])


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


def test_run_and_render_defaults_are_the_same() -> None:
    """One default per render option (RenderConfig's): the CLI's --save and --bg-threshold
    defaults come from RunConfig, the saved overlay's alpha too."""
    from cam_rt.runtime.batch.render import RenderConfig
    from cam_rt.runtime.maps.colour import OVERLAY_OPACITY

    assert RunConfig().render == RenderConfig()
    assert RenderConfig().overlay_alpha == OVERLAY_OPACITY
    help_text = runner.invoke(get_app(), ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "[default: overlay,maps]" in help_text and "[default: 0.3]" in help_text


def test_impossible_kinds_are_refused_before_any_work(tmp_path: Path) -> None:
    """The check both engines share (run_pipeline): seeds of 70,000 classes cannot be written,
    so nothing starts and no output folder is made."""
    from cam_rt.runtime.batch.runner import run_pipeline

    def explain_all(todo: Any, writer: Any) -> None:
        raise AssertionError("explained")

    config = RunConfig(save=("overlay", "seeds"))
    with pytest.raises(ConfigError, match=r"--save seeds .*70000 classes"):
        run_pipeline([], tmp_path / "o", config, explain_all, class_names=("k",) * 70000)
    assert not (tmp_path / "o").exists()


def test_top5_are_named_with_the_models_names(tmp_path: Path, model: Path) -> None:
    _images(tmp_path / "in", 1)
    explainer = Explainer(CamSession(model), ExplainConfig(classes=ClassSelection("top-k", k=1)))
    Runner(explainer, tmp_path / "out").run(discover_inputs([tmp_path / "in"]))
    (record,) = _lines(tmp_path / "out")
    assert len(record["classes"]) == 1
    assert sorted(t["name"] for t in record["top5"]) == ["blue", "green", "red"]
