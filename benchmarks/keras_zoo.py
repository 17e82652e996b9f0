"""Benchmark: export the ten keras.applications classifiers; time, memory, parity, latency.

Per architecture (built with ``weights=None``, ``include_top=True``, its default input size,
20 sigmoid classes; ``--reduced`` for the test suite's smaller variants), one fresh process
exports it as a user would (``cam_rt.export.export_model``), so the wall time includes Python,
TensorFlow and building the model; the launcher measures that process's own peak RSS. Then
ONNX Runtime (CPU, this process) runs the file at the trained size, batch 1: 3 warm-up runs,
``--runs`` timed runs, median and IQR.

    python benchmarks/keras_zoo.py [--models MobileNetV2,VGG16] [--reduced] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, run_process, summarize, write_results

_CHILD = """
import json, sys, time
start = time.perf_counter()
from cam_rt.export import ExportConfig, export_model
from cam_rt.export.zoo import ZOO, build
name, out, reduced = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
model = build(name, reduced=reduced)
report = export_model(model, out, ExportConfig(preprocess=ZOO[name].preprocess))
meta = report.metadata
print(json.dumps({
    "export_seconds": report.seconds,
    "process_seconds_to_done": time.perf_counter() - start,
    "max_rel_error": report.max_rel_error,
    "max_abs_error": max(p.max_abs_error for p in report.parity),
    "checked_sizes": sorted({f"{p.height}x{p.width}" for p in report.parity}),
    "method": meta.method,
    "fixed_size": meta.fixed_size,
    "input_size": list(meta.input_size) if meta.input_size else None,
    "output_stride": meta.output_stride,
    "nodes": sum(report.op_counts.values()),
    "size_mib": report.size_bytes / 2**20,
    "parameters": int(model.count_params()),
}))
"""


def _latency(path: Path, size: tuple[int, int], runs: int) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    for _ in range(3):
        session.run(None, {"images": x})
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, {"images": x})
        samples.append(time.perf_counter() - t0)
    stats = summarize(samples)
    return {"size": f"{size[0]}x{size[1]}", "samples_s": samples, "stats": stats}


def main(argv: list[str] | None = None) -> int:
    from cam_rt.export.zoo import ZOO

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ZOO), help="comma list of ZOO names")
    parser.add_argument("--reduced", action="store_true", help="the test suite's variants")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(ZOO)}")
    info = machine()
    print(f"config: {len(names)} models, reduced={args.reduced}, runs={args.runs}; {info['cpu']}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.onnx"
            run = run_process(
                [sys.executable, "-c", _CHILD, name, str(out), "1" if args.reduced else "0"]
            )
            row: dict[str, Any] = {
                "model": name,
                "wall_s": run.seconds,
                "peak_rss_mib": run.peak_rss_mib,
            }
            if run.returncode != 0:
                row["error"] = (run.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{name}: FAILED ({row['error']})")
                rows.append(row)
                continue
            row.update(json.loads(run.stdout.strip().splitlines()[-1]))
            size = tuple(row["input_size"] or (224, 224))
            row["latency"] = _latency(out, (int(size[0]), int(size[1])), args.runs)
            out.unlink()
            p50 = row["latency"]["stats"].p50 * 1e3
            print(
                f"{name}: {row['method']}, {'fixed' if row['fixed_size'] else 'dynamic'}, "
                f"export {row['wall_s']:.1f} s / {row['peak_rss_mib']:.0f} MiB, rel err "
                f"{row['max_rel_error']:.1e}, ORT {row['latency']['size']} p50 {p50:.1f} ms"
            )
            rows.append(row)
    lines = [
        "| model | params | method | size | input | export s | peak RSS MiB | max rel err "
        "| ORT p50 ms (IQR) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | failed: {r['error']} | | | | | | |")
            continue
        st = r["latency"]["stats"]
        lines.append(
            f"| {r['model']} | {r['parameters'] / 1e6:.1f} M | {r['method']} | "
            f"{'fixed' if r['fixed_size'] else 'dynamic'} | {r['latency']['size']} | "
            f"{r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['max_rel_error']:.1e} | "
            f"{st.p50 * 1e3:.1f} ({st.q1 * 1e3:.1f}-{st.q3 * 1e3:.1f}) |"
        )
    table = "\n".join(lines)
    print(table)
    name = args.name or ("keras_zoo_reduced" if args.reduced else "keras_zoo")
    write_results(name, {"reduced": args.reduced, "runs": args.runs, "rows": rows}, table)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
