"""Benchmark: export the built-in ResNet38-d (random weights); wall time and peak RSS.

Each repetition is a fresh ``cam-rt export resnet38d --weights none`` process, as a user runs
it, so the figures include Python, TensorFlow and Keras start-up, building the 105 M-parameter
model, tracing, conversion, weight binding, ONNX Runtime folding, the parity check at two sizes
and the write. Goal (issue 2): peak RSS <= 4 GiB and <= 90 s on the 2-core reference machine.

    python benchmarks/export_resnet38d.py [--repeat N] [--output-kind cam|features]
    python benchmarks/export_resnet38d.py --source model.keras    # any model (no goal)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_process, summarize, write_results

GOAL_SECONDS, GOAL_RSS_MIB = 90.0, 4096.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--output-kind", choices=["cam", "features"], default="cam")
    parser.add_argument("--name", default="export_resnet38d")
    parser.add_argument("--source", default="resnet38d", help="a model file instead")
    args = parser.parse_args(argv)
    builtin = args.source == "resnet38d"

    script = Path(sys.executable).with_name("cam-rt")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    what = "resnet38d random weights" if builtin else Path(args.source).name
    print(f"config: {what}, output={args.output_kind}, repeat={args.repeat}")
    samples, rss, errors, size = [], [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "resnet38d.onnx"
        for i in range(args.repeat):
            cmd = [
                str(script),
                "export",
                args.source,
                *(["--weights", "none"] if builtin else []),
                "-o",
                str(out),
                "--output",
                args.output_kind,
            ]
            run = run_process(cmd, env)
            if run.returncode != 0:
                print(run.stderr, file=sys.stderr)
                return 1
            rel = [float(m) for m in re.findall(r"relative ([0-9.e+-]+)", run.stderr)]
            samples.append(run.seconds)
            rss.append(run.peak_rss_mib)
            errors.append(max(rel))
            size = out.stat().st_size
            print(
                f"run {i}: {run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB, "
                f"max relative error {max(rel):.2g}"
            )
    t, m = summarize(samples), summarize(rss)
    ok = t.p50 <= GOAL_SECONDS and m.maximum <= GOAL_RSS_MIB
    verdict = ("met" if ok else "NOT met") if builtin else "(the goal is for resnet38d)"
    print(
        f"wall time median {t.p50:.1f} s (IQR {t.iqr:.1f}), peak RSS max {m.maximum:.0f} MiB, "
        f"file {size / 2**20:.0f} MiB; goal <= {GOAL_SECONDS:.0f} s, <= {GOAL_RSS_MIB:.0f} MiB: "
        + verdict
    )
    table = (
        "| workload | wall time (median) | peak RSS | ONNX size | max rel. error vs Keras |\n"
        "|---|---|---|---|---|\n"
        f"| cam-rt export {what} ({args.output_kind}) | {t.p50:.1f} s | "
        f"{m.maximum / 1024:.2f} GiB | {size / 2**20:.0f} MiB | {max(errors):.1g} |\n"
    )
    write_results(
        args.name,
        {
            "output": args.output_kind,
            "seconds": samples,
            "peak_rss_mib": rss,
            "max_rel_error": errors,
            "onnx_bytes": size,
            "goal_met": ok,
            "summary": {"seconds": t, "peak_rss_mib": m},
        },
        table,
    )
    return 0 if ok or not builtin else 2


if __name__ == "__main__":
    raise SystemExit(main())
