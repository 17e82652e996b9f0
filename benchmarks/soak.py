"""Benchmark: a long ``cam-rt run`` that is interrupted and resumed loses nothing, in flat memory.

20,000 small PNGs (32-64 px, shapes on gradients; 1% of them corrupt: cut in half or garbage)
are made once into ``.bench-cache/``. Three ``cam-rt run`` processes, as a user runs them:

1. the first tenth of the images (2,000), to completion: the peak RSS of a small run;
2. all of them, stopped with SIGINT once half of them are recorded (exit 130);
3. the resume, ``--skip-existing`` (exit 2: the corrupt files fail).

Then ``results.jsonl`` is checked against the files: lost lines (an image without its line)
and duplicate lines must be 0, every success line's files must exist, the failures must be the
corrupt files, and no temporary, journal or lock may be left. Peak RSS of runs 2 and 3 against
run 1's (flat: within 10% + 10 MiB).

    python benchmarks/soak.py [--model FILE.onnx] [--images 20000] [--corrupt 0.01]

Without ``--model`` the trained demo model is exported once into .bench-cache/. Each process
is measured by a small launcher (its own peak RSS and wall time, not this script's), which
passes the SIGINT on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, LAUNCHER, ProcessRun, demo_files, square_on_ramp, write_results


def make_images(folder: Path, count: int, corrupt: float, seed: int = 0) -> list[str]:
    """``count`` PNGs in 10 sub-folders (the first is run 1's), cached; the corrupt ones'
    names (relative, without suffix)."""
    marker = folder / "corrupt.json"
    if marker.is_file():
        return list(json.loads(marker.read_text()))
    rng = np.random.default_rng(seed)
    per_part = max(1, -(-count // 10))
    n_bad = max(1, round(count * corrupt))
    bad = set(rng.choice(count, n_bad, replace=False).tolist())
    names = []
    for i in range(count):
        part = folder / f"part{i // per_part:02d}"
        part.mkdir(parents=True, exist_ok=True)
        h, w = (int(v) for v in rng.integers(32, 65, 2))
        path = part / f"img{i:05d}.png"
        Image.fromarray(square_on_ramp(rng, h, w, divisor=5, min_half=3)).save(path)
        if i in bad:
            data = path.read_bytes()
            cut = data[: len(data) // 2] if i % 2 else rng.bytes(len(data))
            path.write_bytes(cut)
            names.append(f"{part.name}/{path.stem}")
    marker.write_text(json.dumps(sorted(names)))
    return sorted(names)


def measured(cmd: list[str], journal: Path | None = None, stop_at: int = 0) -> ProcessRun:
    """Run ``cmd`` under the launcher; with ``journal``, send SIGINT once it has ``stop_at``
    lines (if the run gets there)."""
    with (
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r", suffix=".rusage") as report,
    ):
        launcher = [sys.executable, "-c", LAUNCHER, report.name, *cmd]
        proc = subprocess.Popen(launcher, stdout=subprocess.DEVNULL, stderr=err, text=True)
        if journal is not None:
            lines, offset = 0, 0
            while proc.poll() is None and lines < stop_at:
                time.sleep(0.05)
                if journal.is_file():
                    with journal.open("rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                    offset += len(chunk)
                    lines += chunk.count(b"\n")
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        proc.wait()
        err.seek(0)
        fields = report.read().split()
        if len(fields) != 3:
            raise RuntimeError(f"measuring {cmd} failed ({proc.returncode}): {err.read()}")
        maxrss_kib, seconds, code = fields
        return ProcessRun(float(seconds), int(maxrss_kib) / 1024, int(code), "", err.read())


def check(out: Path, folder: Path, corrupt: list[str]) -> dict[str, Any]:
    """results.jsonl against the input files: lost, duplicate, failed lines, missing files."""
    expected = {p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.png")}
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    names = [r["name"] for r in records]
    failed = sorted(r["name"] for r in records if "error" in r)
    missing = sum(
        not (out / f).is_file() for r in records if "error" not in r for f in r["outputs"]
    )
    left = sorted(p.name for p in out.rglob(".*"))
    return {
        "lines": len(records),
        "lost_lines": len(expected - set(names)),
        "duplicate_lines": len(names) - len(set(names)),
        "unknown_lines": len(set(names) - expected),
        "failed": len(failed),
        "failed_are_the_corrupt_files": failed == corrupt,
        "missing_output_files": missing,
        "leftover_files": left,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--corrupt", type=float, default=0.01, help="share of corrupt files")
    parser.add_argument("--save", default="overlay,maps")
    parser.add_argument("--name", default="soak")
    args = parser.parse_args(argv)
    model = args.model or demo_files()[1]
    folder = CACHE / f"soak-{args.images}-{args.corrupt:g}"
    small = max(1, -(-args.images // 10))
    print(
        f"config: {model.name}, {args.images} images of 32-64 px ({args.corrupt:.0%} corrupt), "
        f"save={args.save}, SIGINT at {args.images // 2} lines then --skip-existing, RSS at "
        f"{small} and {args.images} images, cores={os.cpu_count()}"
    )
    corrupt = make_images(folder, args.images, args.corrupt)
    cam_rt = str(Path(sys.executable).with_name("cam-rt"))
    with tempfile.TemporaryDirectory() as tmp:
        base = [cam_rt, "run", str(model), "--save", args.save, "-q"]
        first = measured([*base, str(folder / "part00"), "-o", f"{tmp}/small"])
        out = Path(tmp) / "soak"
        cut = measured(
            [*base, str(folder), "-o", str(out)], out / ".results.journal.jsonl", args.images // 2
        )
        before = len((out / "results.jsonl").read_text().splitlines())
        resumed = measured([*base, str(folder), "-o", str(out), "--skip-existing"])
        checks = check(out, folder, corrupt)
    runs = {"small": first, "interrupted": cut, "resumed": resumed}
    for label, run in runs.items():
        print(
            f"{label}: exit {run.returncode}, {run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} "
            "MiB"
        )
    wall = cut.seconds + resumed.seconds
    peak = max(cut.peak_rss_mib, resumed.peak_rss_mib)
    flat = peak <= first.peak_rss_mib * 1.1 + 10
    ok = (
        checks["lost_lines"] == checks["duplicate_lines"] == checks["missing_output_files"] == 0
        and checks["failed_are_the_corrupt_files"]
        and not checks["leftover_files"]
        and resumed.returncode == 2
        and cut.returncode in (2, 130)
    )
    print(
        f"{args.images} images: {wall:.1f} s in all ({args.images / wall:.1f} images/s), "
        f"{before} recorded before the SIGINT, lost {checks['lost_lines']}, duplicates "
        f"{checks['duplicate_lines']}, failed {checks['failed']} (corrupt {len(corrupt)}), "
        f"peak RSS {first.peak_rss_mib:.0f} MiB at {small} vs {peak:.0f} MiB at "
        f"{args.images} ({'flat' if flat else 'NOT flat'}){'' if ok else ': CHECK FAILED'}"
    )
    table = (
        "| run | images | exit | wall time | peak RSS |\n|---|---|---|---|---|\n"
        f"| first tenth | {small} | {first.returncode} | {first.seconds:.1f} s | "
        f"{first.peak_rss_mib:.0f} MiB |\n"
        f"| all, SIGINT at half | {before} recorded | {cut.returncode} | {cut.seconds:.1f} s | "
        f"{cut.peak_rss_mib:.0f} MiB |\n"
        f"| resume --skip-existing | {args.images - before} more | {resumed.returncode} | "
        f"{resumed.seconds:.1f} s | {resumed.peak_rss_mib:.0f} MiB |\n\n"
        f"{args.images} images ({len(corrupt)} corrupt), {model.name}: {wall:.1f} s for the "
        f"interrupted run and its resume ({args.images / wall:.1f} images/s); lost lines "
        f"{checks['lost_lines']}, duplicate lines {checks['duplicate_lines']}, missing files "
        f"{checks['missing_output_files']}, failed {checks['failed']} (the corrupt files: "
        f"{checks['failed_are_the_corrupt_files']}), left over: "
        f"{checks['leftover_files'] or 'none'}; peak RSS {'flat' if flat else 'NOT flat'}.\n"
    )
    payload = {
        "model": model.name,
        "images": args.images,
        "corrupt": len(corrupt),
        "save": args.save,
        "recorded_before_sigint": before,
        "runs": {
            k: {"seconds": r.seconds, "peak_rss_mib": r.peak_rss_mib, "exit": r.returncode}
            for k, r in runs.items()
        },
        "wall_s": wall,
        "images_per_s": args.images / wall,
        "rss_flat": flat,
        "checks": checks,
        "ok": ok,
    }
    write_results(args.name, payload, table)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
