"""Benchmark: the GPU deployment path, per provider and precision (to be run on a GPU machine).

For each device (``--devices cuda,tensorrt``) and precision (fp32; fp16 = TensorRT's own fp16
on ``tensorrt``, the ``cam-rt export --fp16`` file elsewhere):

- first-shape cost: one TTA explain on each of ``--new-sizes`` images never seen before, with
  exact sizes (every pass a new shape: cuDNN search or engine rebuild), and with size buckets
  after ``cam-rt warmup``-style warm-up (the warm-up's own cost reported apart);
- steady latency p50/p90 of the TTA explain on one image;
- fidelity against CPU fp32: max abs difference of the normalized maps.

    python benchmarks/gpu.py --model M.onnx [--fp16-model M16.onnx] [--devices cuda,tensorrt]
    python benchmarks/gpu.py --devices cpu --quick     # the smoke run of the test suite (CPU)

No GPU exists on the development machine or in CI: there this script only runs on ``cpu`` to
keep it working; the README says which figures came from where.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import demo_files, summarize, write_results

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ExplainConfig,
    Explainer,
    SessionConfig,
    TensorRTConfig,
    TTAConfig,
    shape_profile,
)
from cam_rt.runtime.plan import warmup_shapes
from cam_rt.runtime.tools.bench import warm_up

TTA = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "mean")


def explain_config(bucket: int) -> ExplainConfig:
    return ExplainConfig(tta=TTA, classes=ClassSelection("all"), batch_size=2, bucket=bucket)


def session_for(
    model: Path, device: str, fp16: bool, bucket: int, sides: tuple[int, int], cache: Path
) -> CamSession:
    config = explain_config(bucket)
    return CamSession(
        model,
        SessionConfig(
            providers=(device,),
            tensorrt=TensorRTConfig(fp16=fp16, cache_dir=cache),
            trt_profile=shape_profile(config, *sides),
            bucketed=bucket > 0,
        ),
    )


def timed_explain(explainer: Explainer, image: np.ndarray) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    (result,) = explainer.explain(image)
    return time.perf_counter() - start, result.maps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="fp32 file (default: the demo model)")
    parser.add_argument("--fp16-model", type=Path, help="'cam-rt export --fp16' file")
    parser.add_argument("--devices", default="cuda,tensorrt")
    parser.add_argument("--bucket", type=int, default=32)
    parser.add_argument("--new-sizes", default="97x131,160x224,211x77,256x256,300x199")
    parser.add_argument("--size", type=int, default=224, help="side of the steady-state image")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 new sizes, 2 repeats")
    parser.add_argument("--name", default="gpu")
    args = parser.parse_args(argv)
    model = args.model or demo_files()[1]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.new_sizes.split(",")]
    repeat = args.repeat
    if args.quick:
        sizes, repeat = sizes[:2], 2
    sides = (min(min(s) for s in sizes), max(max(s) for s in [*sizes, (args.size, args.size)]))
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    print(
        f"config: {model.name}, devices {devices}, TTA {TTA.scales} + flip, bucket "
        f"{args.bucket}, new sizes {sizes}, steady {args.size}px x {repeat}"
    )
    rng = np.random.default_rng(0)
    steady_image = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    new_images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    cpu = Explainer(CamSession(model, SessionConfig(providers=("cpu",))), explain_config(0))
    reference = [r.maps for r in cpu.explain([steady_image])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            for fp16 in (False, True):
                path = model
                if fp16 and device != "tensorrt":
                    if args.fp16_model is None:
                        print(f"{device} fp16: skipped (give --fp16-model)")
                        continue
                    path = args.fp16_model
                trt_fp16 = fp16 and device == "tensorrt"
                cache = Path(tmp) / f"trt-{device}-{fp16}"
                label = f"{device} {'fp16' if fp16 else 'fp32'}"
                # Exact sizes: every TTA pass of every new image is a new shape.
                exact = Explainer(
                    session_for(path, device, trt_fp16, 0, sides, cache), explain_config(0)
                )
                timed_explain(exact, steady_image)  # session warm
                first_exact = [timed_explain(exact, im)[0] for im in new_images]
                # Buckets after warm-up: the new images only meet shapes already run.
                start = time.perf_counter()
                session = session_for(path, device, trt_fp16, args.bucket, sides, cache)
                config = explain_config(args.bucket)
                flips = session.on_gpu
                shapes = warmup_shapes(
                    ExplainConfig(tta=TTA, batch_size=2, batch_flips=flips, bucket=args.bucket),
                    sizes=[*sizes, (args.size, args.size)],
                )
                warm_seconds = sum(warm_up(session, shapes)) + (time.perf_counter() - start)
                bucketed = Explainer(session, config)
                first_bucketed = [timed_explain(bucketed, im)[0] for im in new_images]
                steady = [timed_explain(exact, steady_image) for _ in range(repeat)]
                s = summarize([t for t, _ in steady])
                diff = float(np.abs(steady[-1][1] - reference[0]).max())
                row = {
                    "device": device,
                    "precision": "fp16" if fp16 else "fp32",
                    "providers": exact.session.providers,
                    "first_exact_s": first_exact,
                    "first_bucketed_s": first_bucketed,
                    "warmup_s": warm_seconds,
                    "warmup_shapes": len(shapes),
                    "steady": s.as_dict(),
                    "max_abs_map_diff_vs_cpu_fp32": diff,
                }
                rows.append(row)
                print(
                    f"{label}: new sizes exact {np.mean(first_exact) * 1e3:.1f} ms, bucketed "
                    f"after warm-up {np.mean(first_bucketed) * 1e3:.1f} ms (warm-up "
                    f"{warm_seconds:.1f} s, {len(shapes)} shapes); steady p50 "
                    f"{s.p50 * 1e3:.1f} ms; max map diff vs CPU fp32 {diff:.1e}"
                )
    table = (
        "| device | precision | new size, exact: mean ms | new size, bucketed + warm-up: mean "
        "ms | warm-up s (shapes) | steady p50 ms | max map diff vs CPU fp32 |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    for r in rows:
        table += (
            f"| {r['device']} | {r['precision']} | {np.mean(r['first_exact_s']) * 1e3:.1f} | "
            f"{np.mean(r['first_bucketed_s']) * 1e3:.1f} | {r['warmup_s']:.1f} "
            f"({r['warmup_shapes']}) | {r['steady']['p50'] * 1e3:.1f} | "
            f"{r['max_abs_map_diff_vs_cpu_fp32']:.1e} |\n"
        )
    write_results(args.name, {"model": model.name, "rows": rows}, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
