"""The run report (``cam-rt run --report``): known-answer HTML, paging, escaping, resume."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cam_rt.runtime.batch.report import page_file, read_records, run_pages, write_run_report
from tests.onnx_models import channel_model
from tests.runtime.batch.runs import RUN_FILES, cam_rt, make_images


class Parsed(HTMLParser):
    """Links, image sources, start tags and text of a page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.rel: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
            if a.get("rel"):
                self.rel[str(a["rel"])] = str(a["href"])
        if tag == "img":
            self.imgs.append(a)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _record(i: int, **extra: Any) -> dict[str, Any]:
    name = f"img{i:03d}"
    return {
        "name": name,
        "input": f"/data/{name}.png",
        "size": [48, 64],
        "conversions": [],
        "classes": [{"id": 1, "name": "cat", "probability": 0.75}],
        "boxes": [{"class_id": 1, "box": [1, 2, 30, 40]}],
        "outputs": [f"{name}.overlay.png", f"{name}.heatmap.png", f"{name}.maps.npz"],
        "timings": {"explain": 0.01 * i},
        **extra,
    }


def test_a_page_shows_thumbnails_links_classes_boxes_and_failures() -> None:
    records = [
        _record(0),
        {"name": "broken one", "input": "/data/b.png", "error": "not an image: use a PNG"},
        {"name": "odd", "outputs": "not-a-list", "classes": [3], "boxes": None},  # damaged
    ]
    settings = [("model", "m.onnx"), ("TTA", "scales 1, 2; flip True; mean")]
    pages = run_pages(records, settings)
    assert list(pages) == ["index.html"]
    parsed = Parsed(pages["index.html"])
    assert [i["src"] for i in parsed.imgs] == ["img000.overlay.png", "img000.heatmap.png"]
    assert all(i["loading"] == "lazy" for i in parsed.imgs)
    assert {"img000.overlay.png", "img000.heatmap.png", "img000.maps.npz"} <= set(parsed.links)
    text = "".join(parsed.text)
    for expected in (
        "m.onnx",
        "scales 1, 2; flip True; mean",
        "cat 0.7500",
        "cat: 1, 2, 30, 40",
        "broken one",
        "failed: not an image: use a PNG",
        "3 images: 2 written, 1 failed",
    ):
        assert expected in text
    assert "timings" not in pages["index.html"] and "0.01" not in pages["index.html"]


def test_user_names_are_escaped() -> None:
    record = _record(0)
    record["name"] = 'x"><script>alert(1)</script>'
    record["classes"] = [{"id": 1, "name": "<script>", "probability": 0.5}]
    record["outputs"] = ['x"><script>.overlay.png', "a b#c?.heatmap.png"]
    failed = {"name": "<b>bad</b>", "error": "<img src=x onerror=alert(1)>"}
    page = run_pages([record, failed], [("model", "<script>.onnx")])["index.html"]
    parsed = Parsed(page)
    assert "script" not in parsed.tags
    assert len(parsed.imgs) == 2  # the two thumbnails, not the error's <img>
    assert parsed.imgs[0]["src"] == "x%22%3E%3Cscript%3E.overlay.png"
    assert parsed.imgs[1]["src"] == "a%20b%23c%3F.heatmap.png"
    text = "".join(parsed.text)
    assert "<script>" in text and "<script>.onnx" in text and "<b>bad</b>" in text
    assert "&lt;script&gt;" in page


def test_450_records_make_3_pages_of_200_linked_in_order() -> None:
    records = [_record(i) for i in range(450)]
    pages = run_pages(records, page_size=200)
    assert list(pages) == ["index.html", "report/page-2.html", "report/page-3.html"]
    counts = [len(Parsed(p).imgs) // 2 for p in pages.values()]
    assert counts == [200, 200, 50]
    first, second, third = (Parsed(p) for p in pages.values())
    assert first.rel == {"next": "report/page-2.html"}
    assert second.rel == {"prev": "../index.html", "next": "../report/page-3.html"}
    assert third.rel == {"prev": "../report/page-2.html"}
    assert second.imgs[0]["src"] == "../img200.overlay.png"
    assert {"../index.html", "../report/page-2.html"} <= set(third.links)
    assert max(len(p.encode()) for p in pages.values()) < 2_000_000


def test_a_page_stays_under_2_mb_with_many_classes_and_long_names() -> None:
    classes = [{"id": c, "name": "n" * 200, "probability": 0.5} for c in range(1000)]
    boxes = [{"class_id": c, "box": [0, 0, 9, 9]} for c in range(1000)]
    records = [
        _record(i, classes=classes, boxes=boxes, name="z" * 250 + str(i)) for i in range(200)
    ]
    page = run_pages(records)["index.html"]
    assert len(page.encode()) < 2_000_000
    assert "... and 988 more" in page


def test_write_removes_pages_a_longer_report_left(tmp_path: Path) -> None:
    lines = [json.dumps(_record(i)) for i in range(450)]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\nnot json\n")
    written = write_run_report(tmp_path, page_size=200)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        page_file(1),
        page_file(2),
        page_file(3),
    ]
    assert len(list(read_records(tmp_path / "results.jsonl"))) == 450
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:250]) + "\n")
    write_run_report(tmp_path, page_size=200)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["page-2.html"]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return channel_model(
        tmp_path / "m.onnx", channels=3, offset=0.4, class_names=("red", "<script>", "blue")
    )


def test_cam_rt_run_report_lists_every_image_and_the_failed_one(
    tmp_path: Path, model: Path
) -> None:
    make_images(tmp_path / "in", 4)
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    proc = cam_rt("run", model, tmp_path / "in", "-o", out, "--save", "overlay,heatmap", "--report")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cam-rt: report: {out / 'index.html'} (1 page(s))" in proc.stderr
    parsed = Parsed((out / "index.html").read_text())
    assert len(parsed.imgs) == 8
    assert all((out / str(i["src"])).is_file() for i in parsed.imgs)
    text = "".join(parsed.text)
    assert "bad" in text and "is not an image Pillow can read" in text
    assert "<script>" in text and "script" not in parsed.tags


def test_a_resumed_runs_report_equals_an_uninterrupted_runs(tmp_path: Path, model: Path) -> None:
    make_images(tmp_path / "in", 7)
    args = ("--save", "overlay,heatmap", "--report", "-q")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert cam_rt("run", model, tmp_path / "in", "-o", whole, *args).returncode == 0
    assert cam_rt("run", model, tmp_path / "in", "-o", resumed, *args).returncode == 0
    # as a killed run leaves it: the last 3 images not recorded, one of their files missing
    results = resumed / "results.jsonl"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[:4]))
    (resumed / "img005.overlay.png").unlink()
    (resumed / "index.html").unlink()
    proc = cam_rt("run", model, tmp_path / "in", "-o", resumed, *args, "--skip-existing")
    assert proc.returncode == 0, proc.stderr
    assert not any((resumed / f).exists() for f in RUN_FILES)
    assert (resumed / "index.html").read_bytes() == (whole / "index.html").read_bytes()
