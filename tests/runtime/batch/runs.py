"""Helpers of the tests that run ``cam-rt run`` for real: a process, images, results, snapshots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CLI = [sys.executable, "-m", "cam_rt.runtime.cli"]
# The files a run keeps only while it runs (a killed run may leave them).
RUN_FILES = (".results.journal.jsonl", ".cam-rt.lock")


def cam_rt(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``cam-rt ARGS`` in a fresh process (stdout and stderr captured)."""
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def popen(*args: str | Path) -> subprocess.Popen[str]:
    """``cam-rt ARGS`` started in the background (stderr piped)."""
    return subprocess.Popen([*CLI, *map(str, args)], stderr=subprocess.PIPE, text=True)


def make_images(folder: Path, n: int, size: tuple[int, int] = (48, 64), seed: int = 1) -> None:
    """``n`` random RGB PNGs ``img000.png``, ... (seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")


def lines(out: Path) -> list[dict[str, Any]]:
    """results.jsonl of ``out``, one record per line."""
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def names(out: Path) -> list[str]:
    return [record["name"] for record in lines(out)]


def snapshot(out: Path) -> dict[str, object]:
    """Every file of ``out`` (npz as arrays, results.jsonl without its timings)."""
    files: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if path.suffix == ".npz":
            with np.load(path) as data:
                files[rel] = {k: data[k].tolist() for k in data.files}
        elif path.name == "results.jsonl":
            records = [json.loads(line) for line in path.read_text().splitlines()]
            for record in records:
                record.pop("timings", None)
            files[rel] = records
        else:
            files[rel] = path.read_bytes()
    return files


def recorded_with_files(out: Path) -> list[str]:
    """Names of the success lines in results.jsonl and the journal, each checked to have all
    its files (AssertionError if one does not)."""
    found = []
    for source in (out / "results.jsonl", out / RUN_FILES[0]):
        if not source.is_file():
            continue
        for line in source.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "outputs" in record:
                missing = [f for f in record["outputs"] if not (out / f).is_file()]
                assert not missing, (record["name"], missing)
                found.append(record["name"])
    return found
