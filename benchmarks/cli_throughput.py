"""Benchmark: ``cam-rt run`` throughput (images/s) and peak RSS over a folder of images.

Each configuration runs ``cam-rt run`` in a fresh process on generated PNG images (shapes on
smooth backgrounds, 96-192 px, like the demo data), as a user does: decode, TTA inference,
encoding and atomic writes included. Two folder sizes show whether memory stays flat.

    python benchmarks/cli_throughput.py [--model FILE.onnx] [--images 200,2000] [--tta]
    python benchmarks/cli_throughput.py --resnet38d --images 20 --size 320
    python benchmarks/cli_throughput.py --tta --engines local,ray:1,ray:2   # local vs Ray actors

With Ray, the process measured is the driver (it decodes nothing and writes every file); the
actors' memory is not in its peak RSS. Ray's start-up (a local instance) is in the wall time.

Without --model the trained demo model is exported once into .bench-cache/.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import demo_files, resnet38d_file, run_process, square_on_ramp, write_results


def make_images(folder: Path, count: int, size: int | None, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        h, w = (size, size) if size else (int(v) for v in rng.integers(96, 193, 2))
        Image.fromarray(square_on_ramp(rng, h, w)).save(folder / f"img{i:05d}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--resnet38d", action="store_true")
    parser.add_argument("--images", default="200,2000", help="comma list of folder sizes")
    parser.add_argument("--size", type=int, default=0, help="square side; 0: 96-192 px")
    parser.add_argument("--tta", action="store_true", help="scales 0.5,1,1.5,2 + flip")
    parser.add_argument("--save", default="overlay,maps")
    parser.add_argument("--name", default="")
    parser.add_argument("--engines", default="local", help="comma list: local, ray:N")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in engines:
        if engine != "local" and not (engine.startswith("ray:") and engine[4:].isdigit()):
            parser.error(f"engine '{engine}' is not local or ray:N")
    model = args.model or (resnet38d_file() if args.resnet38d else demo_files()[1])
    counts = [int(c) for c in args.images.split(",")]
    cam_rt = str(Path(sys.executable).with_name("cam-rt"))
    stem = "demo" if model.stem.startswith("demo-") else model.stem  # cache names carry a hash
    name = args.name or f"cli_throughput_{stem}{'_tta' if args.tta else ''}"
    print(
        f"config: {model.name}, images {counts}, size {args.size or '96-192'}, "
        f"tta={args.tta}, save={args.save}, engines={engines}, cores={os.cpu_count()}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            folder = Path(tmp) / f"in{count}"
            make_images(folder, count, args.size or None)
            for engine in engines:
                out = Path(tmp) / f"out{count}-{engine.replace(':', '')}"
                cmd = [cam_rt, "run", str(model), str(folder), "-o", str(out), "--save", args.save]
                cmd.append("-q")
                if args.tta:
                    cmd.append("--tta")
                if engine != "local":
                    cmd += ["--engine", "ray", "--num-workers", engine[4:]]
                run = run_process(cmd)
                if run.returncode != 0:
                    print(run.stderr, file=sys.stderr)
                    return 1
                rate = count / run.seconds
                rows.append(
                    {
                        "engine": engine,
                        "images": count,
                        "seconds": run.seconds,
                        "images_per_s": rate,
                        "peak_rss_mib": run.peak_rss_mib,
                    }
                )
                print(
                    f"{count} images, {engine}: {run.seconds:.1f} s, {rate:.2f} images/s, "
                    f"peak RSS {run.peak_rss_mib:.0f} MiB"
                )
    local = {r["images"]: r["seconds"] for r in rows if r["engine"] == "local"}
    table = (
        "| model | TTA | engine | images | wall time | images/s | overhead/image vs local | "
        "peak RSS |\n|---|---|---|---|---|---|---|---|\n"
    )
    for r in rows:
        base = local.get(r["images"])
        extra = (
            f"{1000 * (r['seconds'] - base) / r['images']:+.1f} ms"
            if base is not None and r["engine"] != "local"
            else ""
        )
        table += (
            f"| {model.name} | {'0.5/1/1.5/2+flip' if args.tta else 'no'} | {r['engine']} | "
            f"{r['images']} | {r['seconds']:.1f} s | {r['images_per_s']:.2f} | {extra} | "
            f"{r['peak_rss_mib']:.0f} MiB |\n"
        )
    write_results(
        name, {"model": model.name, "tta": args.tta, "size": args.size, "rows": rows}, table
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
