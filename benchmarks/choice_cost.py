"""Benchmark: what ``--device auto`` / ``--precision auto``'s one-off measurement costs.

ResNet38-d (random weights, exported once into ``.bench-cache/``), TTA 0.5/1/1.5/2 + flip in
keras-explainable mode, per-shape sessions, one 224x224 image explained twice by one session:
the first call measures the candidates (a fresh cache folder, ``choice_cache="off"``), the
second runs the choice. The difference is the measurement's cost. Run it where
onnxruntime-openvino is installed:

    .venv-openvino/bin/python benchmarks/choice_cost.py [--size 224]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, write_results

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ExplainConfig,
    Explainer,
    SessionConfig,
    TTAConfig,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--model", type=Path, default=CACHE / "resnet38d_cam.onnx")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"{args.model} does not exist: run benchmarks/e2e.py once (it exports it)")
    image = np.random.default_rng(0).uniform(0, 255, (args.size, args.size, 3)).astype(np.float32)
    tta = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "keras-explainable")
    explain = ExplainConfig(tta=tta, classes=ClassSelection("all"))
    config = SessionConfig(providers=("auto",), choice_cache="off", static_shapes=True)
    start = time.perf_counter()
    session = CamSession(args.model, config)
    opened = time.perf_counter() - start
    explainer = Explainer(session, explain)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            start = time.perf_counter()
            explainer.explain(image)
            times.append(time.perf_counter() - start)
    choice = session.choice.describe() if session.choice is not None else "nothing measured"
    table = (
        f"ResNet38-d TTA {args.size}x{args.size}, --device auto, per-shape sessions\n\n"
        "| open s | first image s (measures) | second image s | measurement s | choice |\n"
        "|---|---|---|---|---|\n"
        f"| {opened:.1f} | {times[0]:.1f} | {times[1]:.1f} | {times[0] - times[1]:.1f} | "
        f"{choice} |\n"
    )
    print(table)
    write_results(
        "choice_cost",
        {"size": args.size, "open_s": opened, "image_s": times, "choice": choice},
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
