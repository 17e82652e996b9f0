"""The record step: the results.jsonl line format, the ledger, the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cam_rt.runtime.batch.inputs import InputItem
from cam_rt.runtime.batch.journal import JOURNAL, Journal
from cam_rt.runtime.batch.records import Ledger, RunSummary, error_record, success_record
from cam_rt.runtime.errors import InputError
from cam_rt.runtime.explain import CamResult


def _item(name: str) -> InputItem:
    return InputItem(Path("/data") / f"{name}.png", name)


def test_success_record_format() -> None:
    result = CamResult(
        scores=np.asarray([1.23456789, -2.0], np.float32),
        probabilities=np.asarray([0.7745998, 0.1192029], np.float32),
        class_ids=(0,),
        class_names=("cat",),
        maps=np.zeros((3, 5, 1), np.float32),
    )
    record = success_record(
        _item("a/x"),
        result,
        ("grayscale to RGB",),
        [(0, [1, 2, 3, 4])],
        ["a/x.overlay.png"],
        {"decode_s": 0.1, "explain_s": 0.2, "write_s": 0.3},
    )
    assert record == {
        "name": "a/x",
        "input": "/data/a/x.png",
        "size": [3, 5],
        "conversions": ["grayscale to RGB"],
        "classes": [{"id": 0, "name": "cat", "score": 1.234568, "probability": 0.7746}],
        "top5": [
            {"id": 0, "name": "cat", "probability": 0.7746},
            {"id": 1, "name": "1", "probability": 0.119203},
        ],
        "boxes": [{"class_id": 0, "box": [1, 2, 3, 4]}],
        "outputs": ["a/x.overlay.png"],
        "timings": {"decode_s": 0.1, "explain_s": 0.2, "write_s": 0.3},
    }
    assert json.loads(json.dumps(record)) == record
    assert error_record(_item("y"), InputError("bad")) == {
        "name": "y",
        "input": "/data/y.png",
        "error": "bad",
    }


def test_exit_codes() -> None:
    assert RunSummary().exit_code == 0
    assert RunSummary(failed=1).exit_code == 2
    assert RunSummary(failed=1, interrupted=True).exit_code == 130


def test_ledger_counts_records_and_reports_events(tmp_path: Path) -> None:
    events: list[tuple[str, Any]] = []
    summary = RunSummary()
    with Journal(tmp_path) as journal:
        ledger = Ledger(journal, summary, lambda kind, data: events.append((kind, dict(data))))
        ledger.start(3, 1)
        one = {"name": "a", "conversions": ["16-bit to 8-bit"]}
        two = {"name": "b", "conversions": ["16-bit to 8-bit"]}
        ledger.done(one)
        ledger.done(two)
        ledger.failed(_item("c"), InputError("broken"))
    assert (summary.total, summary.skipped, summary.done, summary.failed) == (3, 1, 2, 1)
    assert summary.conversions == {"16-bit to 8-bit": 2}
    assert [kind for kind, _ in events] == ["start", "conversion", "done", "done", "failed"]
    assert events[1][1] == {"kind": "16-bit to 8-bit", "name": "a"}
    assert events[4][1]["record"] == {"name": "c", "input": "/data/c.png", "error": "broken"}
    assert ledger.has("a") and ledger.has("c") and not ledger.has("d")
    names = [json.loads(line)["name"] for line in (tmp_path / JOURNAL).read_text().splitlines()]
    assert names == ["a", "b", "c"]


def test_many_classes_keep_the_explained_and_the_top5_only() -> None:
    scores = np.linspace(-5.0, 5.0, 1000).astype(np.float32)
    probs = (1 / (1 + np.exp(-scores))).astype(np.float32)
    result = CamResult(scores, probs, (10, 999), ("c10", "c999"), np.zeros((2, 2, 2), np.float32))
    record = success_record(_item("m"), result, (), [(10, None), (999, None)], ["m.maps.npz"], {})
    assert "scores" not in record
    assert record["classes"] == [
        {
            "id": 10,
            "name": "c10",
            "score": round(float(scores[10]), 6),
            "probability": round(float(probs[10]), 6),
        },
        {"id": 999, "name": "c999", "score": 5.0, "probability": round(float(probs[999]), 6)},
    ]
    assert [t["id"] for t in record["top5"]] == [999, 998, 997, 996, 995]
    assert record["top5"][0] == {
        "id": 999,
        "name": "c999",
        "probability": round(float(probs[999]), 6),
    }
    assert record["top5"][1]["name"] == "998"  # not explained, no class names given: its id
    assert len(json.dumps(record)) < 1000
    names = tuple(f"class {i}" for i in range(1000))
    named = success_record(_item("m"), result, (), [], [], {}, class_names=names)
    assert [t["name"] for t in named["top5"]] == [f"class {i}" for i in range(999, 994, -1)]
    assert [t["probability"] for t in named["top5"]] == [t["probability"] for t in record["top5"]]


def test_output_errors_are_kept_in_the_line() -> None:
    result = CamResult(
        np.zeros(2, np.float32), np.zeros(2, np.float32), (), (), np.zeros((2, 2, 0), np.float32)
    )
    record = success_record(
        _item("e"), result, (), [], ["e.maps.npz"], {}, output_errors={"seeds": "bad"}
    )
    assert record["output_errors"] == {"seeds": "bad"}
    assert "output_errors" not in success_record(_item("e"), result, (), [], [], {})
