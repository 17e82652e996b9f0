"""Benchmark: where the time goes in cam-rt, stage by stage, for one image from file to outputs.

Stages: decode (PNG file -> RGB), prepare, TTA input resizes, preprocessing (NumPy, plain files
only), ONNX Runtime, CAM weighting (``features`` files), class selection, TTA map resizes and
merge, normalization, colouring (class overlay blended on the image) and encoding (overlay PNG
and maps NPZ), as ``cam-rt run`` does them.

Default workload (issue 3): the built-in ResNet38-d (random weights), TTA scales 0.5/1/1.5/2 +
flip (mean mode), one 320x320 image, CPU. Goal: everything but the ONNX Runtime run <= 5 % of
the end-to-end time.

    python benchmarks/runtime_stages.py [--model FILE.onnx] [--size 320] [--repeat 5] [--no-tta]

Without ``--model`` the ResNet38-d is exported once into ``.bench-cache/``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import resnet38d_file, summarize, write_results

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.batch.io import encode_npz, encode_png, read_image
from cam_rt.runtime.maps.colour import blend, class_overlay

ORDER = (
    "decode",
    "prepare",
    "resize_input",
    "preprocess",
    "onnxruntime",
    "cam_weighting",
    "select",
    "tta_resize",
    "normalize",
    "colour",
    "encode",
)


def one_image(explainer: Explainer, path: Path) -> dict[str, float]:
    """Seconds per stage for ``path``: decode, explain (its own stages), colour, encode."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    image = read_image(path).pixels
    timings["decode"] = time.perf_counter() - start
    (result,) = explainer.explain(image, timings=timings)
    start = time.perf_counter()
    overlay = blend(image, class_overlay(result.maps, result.class_ids))
    timings["colour"] = time.perf_counter() - start
    start = time.perf_counter()
    encode_png(overlay)
    encode_npz(maps=result.maps.astype(np.float16), class_ids=np.asarray(result.class_ids))
    timings["encode"] = time.perf_counter() - start
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--output", choices=["cam", "features"], default="cam")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mode", default="mean")
    parser.add_argument("--no-tta", dest="tta", action="store_false")
    parser.add_argument("--name", default="runtime_stages")
    args = parser.parse_args(argv)
    model = args.model or resnet38d_file(args.output)
    tta = TTAConfig((0.5, 1.0, 1.5, 2.0), True, args.mode) if args.tta else None
    explainer = Explainer(CamSession(model), ExplainConfig(tta, ClassSelection("top-k", k=3)))
    what = f"TTA 0.5/1/1.5/2 + flip ({args.mode})" if tta else "no TTA"
    print(f"config: {model.name}, {args.size}x{args.size}, {what}, repeat={args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        path = Path(tmp) / "image.png"
        Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(path)
        one_image(explainer, path)  # warm-up
        totals, stages = [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            timings = one_image(explainer, path)
            total = time.perf_counter() - start
            totals.append(total)
            stages.append(timings)
            print(
                f"run {i}: total {total * 1e3:.1f} ms, "
                + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in timings.items())
            )
    t = summarize(totals)
    names = [k for k in ORDER if k in stages[0]] + [k for k in stages[0] if k not in ORDER]
    medians = {k: summarize([s.get(k, 0.0) for s in stages]).p50 for k in names}
    other = t.p50 - medians["onnxruntime"]
    share = other / t.p50
    print(
        f"median total {t.p50 * 1e3:.1f} ms (IQR {t.iqr * 1e3:.1f}); outside ONNX Runtime "
        f"{other * 1e3:.1f} ms = {share:.1%} (goal <= 5%)"
    )
    rows = "".join(f"| {k} | {v * 1e3:.2f} | {v / t.p50:.2%} |\n" for k, v in medians.items())
    table = (
        f"{model.name}, one {args.size}x{args.size} PNG from file to encoded outputs, {what}\n\n"
        "| stage | median ms | share |\n|---|---|---|\n"
        + rows
        + f"| **total** | {t.p50 * 1e3:.1f} | 100% |\n| outside ONNX Runtime | "
        f"{other * 1e3:.1f} | {share:.1%} |\n"
    )
    write_results(
        args.name,
        {
            "model": model.name,
            "size": args.size,
            "tta": what,
            "totals": totals,
            "stages": stages,
            "share_outside_ort": share,
        },
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
