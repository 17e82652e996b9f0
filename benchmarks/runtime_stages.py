"""Benchmark: where the time goes in one cam-rt TTA call (stage breakdown).

Default workload (issue 3): the built-in ResNet38-d (random weights), TTA scales 0.5/1/1.5/2 +
flip (mean mode), one 320x320 image, CPU. Goal: everything but the ONNX Runtime run <= 5 % of
the end-to-end time.

    python benchmarks/runtime_stages.py [--model FILE.onnx] [--size 320] [--repeat 5]

Without ``--model`` the ResNet38-d is exported once to ``.bench-cache/resnet38d.onnx``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import summarize, write_results

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig

CACHE = Path(__file__).resolve().parents[1] / ".bench-cache"


def resnet38d_file(output: str = "cam") -> Path:
    path = CACHE / f"resnet38d_{output}.onnx"
    if not path.is_file():
        CACHE.mkdir(exist_ok=True)
        script = Path(sys.executable).with_name("cam-rt")
        cmd = [
            str(script),
            "export",
            "resnet38d",
            "--weights",
            "none",
            "-o",
            str(path),
            "--output",
            output,
            "--quiet",
        ]
        subprocess.run(cmd, check=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--output", choices=["cam", "features"], default="cam")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mode", default="mean")
    parser.add_argument("--name", default="runtime_stages")
    args = parser.parse_args(argv)
    model = args.model or resnet38d_file(args.output)
    tta = TTAConfig((0.5, 1.0, 1.5, 2.0), True, args.mode)
    explainer = Explainer(CamSession(model), ExplainConfig(tta, ClassSelection("top-k", k=3)))
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    print(f"config: {model.name}, {args.size}x{args.size}, TTA {tta}, repeat={args.repeat}")
    explainer.explain(image)  # warm-up
    totals, stages = [], []
    for i in range(args.repeat):
        timings: dict[str, float] = {}
        start = time.perf_counter()
        explainer.explain(image, timings=timings)
        total = time.perf_counter() - start
        totals.append(total)
        stages.append(timings)
        print(
            f"run {i}: total {total * 1e3:.1f} ms, "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in timings.items())
        )
    t = summarize(totals)
    names = list(stages[0])
    medians = {k: summarize([s[k] for s in stages]).median for k in names}
    other = t.median - medians["model"]
    share = other / t.median
    print(
        f"median total {t.median * 1e3:.1f} ms (IQR {t.iqr * 1e3:.1f}); outside ONNX Runtime "
        f"{other * 1e3:.1f} ms = {share:.1%} (goal <= 5%)"
    )
    rows = "".join(f"| {k} | {v * 1e3:.1f} | {v / t.median:.1%} |\n" for k, v in medians.items())
    table = (
        f"{model.name}, {args.size}x{args.size}, TTA scales 0.5/1/1.5/2 + flip ({args.mode})\n\n"
        "| stage | median ms | share |\n|---|---|---|\n"
        + rows
        + f"| **total** | {t.median * 1e3:.1f} | 100% |\n| outside ONNX Runtime | "
        f"{other * 1e3:.1f} | {share:.1%} |\n"
    )
    write_results(
        args.name,
        {
            "model": model.name,
            "size": args.size,
            "mode": args.mode,
            "totals": totals,
            "stages": stages,
            "share_outside_ort": share,
        },
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
