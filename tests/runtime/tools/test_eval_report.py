"""``cam-rt eval --report``: the page's table equals the EvalReport's; worst images known."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime.batch.report import eval_page
from cam_rt.runtime.tools.evaluate import SeedScorer
from tests.onnx_models import channel_model
from tests.runtime.tools.test_evaluate import _voc


class Tables(HTMLParser):
    """The rows (cell texts) of each table by id, and whether an <svg> polyline is there."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.polyline = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.current = dict(attrs).get("id") or ""
            self.tables[self.current] = []
        elif tag == "tr" and self.current is not None:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current is not None:
            self.tables[self.current][-1].append("")
        elif tag == "polyline":
            self.polyline = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.current is not None and self.tables[self.current]:
            row = self.tables[self.current][-1]
            if row:
                row[-1] += data


def test_worst_images_are_the_lowest_iou_at_the_best_threshold() -> None:
    mask = np.zeros((4, 6), np.uint8)
    mask[:2, :3] = 1
    right = (mask == 1).astype(np.float32)[..., None]
    scorer = SeedScorer(2, (0.5,))
    scorer.add(right, [0], mask, "good")
    scorer.add(1 - right, [0], mask, "inverted")  # every pixel wrong
    report = scorer.report(["a"])
    worst = report.worst()
    assert [w[0] for w in worst] == ["inverted", "good"]
    assert [w[1:] for w in worst] == [(0.0, 1.0), pytest.approx((1.0, 0.0))]
    assert report.to_json()["worst_images"][0] == {
        "name": "inverted",
        "miou": 0.0,
        "wrong_pixels": 1.0,
    }
    parsed = Tables(eval_page(report.to_json()))
    assert parsed.tables["worst"][1:] == [
        ["inverted", "0.00", "100.00"],
        ["good", "100.00", "0.00"],
    ]


def test_cam_rt_eval_report_table_equals_the_reports(tmp_path: Path) -> None:
    model = channel_model(
        tmp_path / "m.onnx", channels=3, offset=0.0, class_names=("r", "<script>", "b")
    )
    _voc(tmp_path / "voc")
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli", "eval", str(model), "--voc-root",
         str(tmp_path / "voc"), "--split", "val", "--json", str(out), "--report",
         str(tmp_path / "pages"), "-q"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    page = (tmp_path / "pages" / "index.html").read_text()
    parsed = Tables(page)
    rows = parsed.tables["per-class"][1:]
    assert rows == [[k, f"{100 * v:.2f}"] for k, v in report["per_class_iou"].items()]
    assert [r[0] for r in parsed.tables["worst"][1:]] == [w["name"] for w in report["worst_images"]]
    assert len(report["worst_images"]) == 4 and parsed.polyline
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_bad_report_path_is_refused_before_the_evaluation(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3, offset=0.0)
    _voc(tmp_path / "voc")
    (tmp_path / "fifo.html").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli", "eval", str(model), "--voc-root",
         str(tmp_path / "voc"), "--split", "val", "--report", str(tmp_path / "fifo.html" / "x"),
         "-q"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0  # a folder path gets index.html inside it
    assert (tmp_path / "fifo.html" / "x" / "index.html").is_file()
    (tmp_path / "dir.html").mkdir()
    (tmp_path / "dir.html" / "index.html").mkdir()
    bad = subprocess.run(
        [sys.executable, "-m", "cam_rt.runtime.cli", "eval", str(model), "--voc-root",
         str(tmp_path / "voc"), "--split", "val", "--report", str(tmp_path / "dir.html"), "-q"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "is a folder" in bad.stderr or "give the path of a file" in bad.stderr
