"""Smoke runs of the benchmark scripts on a tiny model, and their statistics helper."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.onnx_models import channel_model

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@functools.cache
def _common() -> Any:
    """benchmarks/common.py, loaded from its file (sys.path stays as it is)."""
    spec = importlib.util.spec_from_file_location("cam_rt_bench_common", BENCH / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_summarize() -> None:
    summarize = _common().summarize
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.n, s.p50, s.q1, s.q3, s.minimum, s.maximum) == (5, 3.0, 2.0, 4.0, 1.0, 5.0)
    assert s.iqr == 2.0
    assert summarize([7.0]).iqr == 0.0
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize(
    ("script", "args", "result"),
    [
        (
            "cli_throughput.py",
            ["--images", "3", "--tta", "--engines", "local,ray:1", "--name", "smoke_cli"],
            "smoke_cli",
        ),
        (
            "runtime_stages.py",
            ["--size", "40", "--repeat", "2", "--name", "smoke_stages"],
            "smoke_stages",
        ),
        ("gpu.py", ["--devices", "cpu", "--quick", "--name", "smoke_gpu"], "smoke_gpu"),
        ("soak.py", ["--images", "60", "--name", "smoke_soak"], "smoke_soak"),
        (
            "serve.py",
            [
                *("--images", "2", "--size", "48x64", "--requests", "4", "--clients", "1,2"),
                *("--rss-requests", "20", "--name", "smoke_serve"),
            ],
            "smoke_serve",
        ),
    ],
)
def test_scripts_run(tmp_path: Path, script: str, args: list[str], result: str) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3)
    env = {**os.environ, "CAM_RT_BENCH_RESULTS": str(tmp_path / "results")}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--model", str(model), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("config:")
    payload = json.loads((tmp_path / "results" / f"{result}.json").read_text())
    assert payload["machine"]["cores"] and (tmp_path / "results" / f"{result}.md").is_file()
    if result == "smoke_cli":  # the same folder through both engines
        assert [r["engine"] for r in payload["rows"]] == ["local", "ray:1"]
        assert "+" in (tmp_path / "results" / "smoke_cli.md").read_text()  # Ray's overhead
    if result == "smoke_gpu":  # CPU stands in for the GPU: same maps as the reference
        (row,) = payload["rows"]
        assert row["max_abs_map_diff_vs_cpu_fp32"] == 0.0 and row["warmup_shapes"] > 0
    if result == "smoke_serve":  # both modes, each client count; RSS read 10 times
        assert [(r["mode"], r["clients"]) for r in payload["rows"]] == [
            ("batching", 1),
            ("batching", 2),
            ("no batching", 1),
            ("no batching", 2),
        ]
        assert len(payload["rss_mib"]) == 10 and payload["cam_rt_run_images_per_s"] > 0
    if result == "smoke_stages":  # from file to encoded outputs
        assert {"decode", "onnxruntime", "tta_resize", "colour", "encode"} <= set(
            payload["stages"][0]
        )


def test_run_process_measures_the_child_not_its_parent() -> None:
    run_process = _common().run_process
    """A child forked from a large process must not report the parent's memory as its own."""
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB held by this process
    child = "import numpy as np; a = np.ones(100 * 2**20 // 8); a += 1"
    run = run_process([sys.executable, "-c", child])
    assert run.returncode == 0 and 100 <= run.peak_rss_mib < 300
    assert 0 < run.seconds < 30 and ballast.sum() > 0
    missing = run_process(["/nonexistent/command"])
    assert missing.returncode == 127 and "cannot run /nonexistent/command" in missing.stderr
    killed = run_process([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"])
    assert killed.returncode == -9  # a kill (e.g. the OOM killer) is not an ordinary exit


def test_e2e_quick(tmp_path: Path) -> None:
    """cam-rt vs the TensorFlow way on the demo model: both sides run, maps agree, files written."""
    env = {
        **os.environ,
        "CAM_RT_BENCH_RESULTS": str(tmp_path / "results"),
        "CAM_RT_BENCH_CACHE": str(tmp_path / "cache"),
    }
    variants = ["--variants", "int8,fp32-external"]
    proc = subprocess.run(
        [sys.executable, str(BENCH / "e2e.py"), "--quick", *variants, "--name", "e2e"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("config:")
    payload = json.loads((tmp_path / "results" / "e2e.json").read_text())
    rows = {r["workload"]: r for r in payload["rows"]}
    assert set(rows) == {"demo-folder", "demo-folder-tta"}
    for row in rows.values():
        assert row["max_abs_map_diff"] < 1e-4  # the same maps on both sides
        assert row["cam_rt"]["n"] == row["tf"]["n"] == 3
        assert row["gflop_per_image"] > 0 and row["cam_rt_rss_mib"] > 0
        int8 = row["variants"]["int8"]  # a third side: the quantized file, its error shown
        assert int8["stats"]["n"] == 3 and 0 < int8["max_abs_map_diff"] <= 1
        assert row["variants"]["fp32-external"]["max_abs_map_diff"] < 1e-4  # same weights
    # TTA runs 10 passes of the same image sizes: more FLOPs than one pass.
    assert rows["demo-folder-tta"]["gflop_per_image"] > 5 * rows["demo-folder"]["gflop_per_image"]
    assert [c["model"] for c in payload["cold"]] == ["demo", "demo (external data)"]
    assert payload["cold"][0]["tf_s"]["n"] == 1
    assert (tmp_path / "results" / "e2e.png").stat().st_size > 1000
    assert "| cam-rt int8 |" in (tmp_path / "results" / "e2e.md").read_text()


def test_export_and_quality_scripts_quick(tmp_path: Path, keras_file: Path) -> None:
    """The export benchmark on a small model, the quality table on 6 held-out images, the
    fidelity table of fp16 and int8 on 4."""
    env = {**os.environ, "CAM_RT_BENCH_RESULTS": str(tmp_path / "results")}
    runs = {
        "smoke_export": [str(BENCH / "export_resnet38d.py"), "--source", str(keras_file)],
        "smoke_quality": [str(BENCH / "quality.py"), "--count", "6"],
        "smoke_fidelity": [
            str(BENCH / "fidelity.py"),
            *("--count", "4", "--calibration", "2", "--variants", "fp16,int8,openvino-bf16"),
        ],
    }
    for name, args in runs.items():
        proc = subprocess.run(
            [sys.executable, *args, "--name", name],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.startswith("config:")
    export = json.loads((tmp_path / "results" / "smoke_export.json").read_text())
    assert export["onnx_bytes"] > 0 and export["max_rel_error"][0] < 1e-4
    quality = json.loads((tmp_path / "results" / "smoke_quality.json").read_text())
    assert quality["images"] == 6 and 0 < quality["rows"]["TTA mean"]["miou"] <= 1
    fidelity = json.loads((tmp_path / "results" / "smoke_fidelity.json").read_text())
    assert fidelity["skipped"] == ["openvino-bf16"]  # no OpenVINO EP in this environment
    fp16, int8 = fidelity["rows"]["fp16"], fidelity["rows"]["int8"]
    assert fp16["precision"] == "fp16 (file)" and int8["precision"] == "int8 (QDQ file)"
    assert 0 < fp16["tta_max_abs"] < int8["tta_max_abs"] <= 1  # fp16 is the closer of the two


def test_pictures_smoke(tmp_path: Path) -> None:
    """benchmarks/pictures.py on a tiny model and 2 synthetic images: the README's pictures
    are the run's PNGs, each under 150 KB, listed in the results."""
    model = channel_model(tmp_path / "m.onnx", channels=3)
    out = tmp_path / "pictures"
    env = {**os.environ, "CAM_RT_BENCH_RESULTS": str(tmp_path / "results")}
    args = ["--model", str(model), "--count", "2", "--out", str(out), "--name", "smoke_pictures"]
    proc = subprocess.run(
        [sys.executable, str(BENCH / "pictures.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("config:")
    payload = json.loads((tmp_path / "results" / "smoke_pictures.json").read_text())
    files = payload["files"]
    assert {"grid.png", "synthetic.overlay.png", "photo_cat.overlay.png"} <= set(files)
    for name, size in files.items():
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 0
        assert size == (out / name).stat().st_size < 150_000
