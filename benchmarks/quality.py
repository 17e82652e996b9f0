"""CAM seed quality of the trained demo model on the held-out synthetic split (issue 5).

Reports classification mAP, seed mIoU (OC-CSE protocol, background threshold swept over
0.10..0.60 for this data) for vanilla CAM, TTA in mean and keras-explainable modes, TTA with
predicted instead of ground-truth labels, and two baselines: all-foreground (every pixel the
first ground-truth class) and colour saliency (pixels far from the image's median colour get the
first ground-truth class, the distance swept like the CAM threshold).

    python benchmarks/quality.py [--count 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.tools.evaluate import SeedScorer, evaluate, voc_items

THRESHOLDS = tuple(round(0.10 + 0.01 * i, 2) for i in range(51))  # 0.10 .. 0.60
SCALES = (0.5, 1.0, 1.5, 2.0)


def export_demo(folder: Path, weights: Path | None = None, fp16: bool = False) -> Path:
    if weights is not None and weights.suffix == ".keras":  # a whole model, e.g. an experiment
        code = f"import shutil; shutil.copy({str(weights)!r}, {str(folder / 'demo.keras')!r})\n"
    else:
        code = (
            "from cam_rt.export.train_demo import DEMO_WEIGHTS, build_demo_model\n"
            "model = build_demo_model()\n"
            f"model.load_weights({str(weights) if weights else None!r} or DEMO_WEIGHTS)\n"
            f"model.save({str(folder / 'demo.keras')!r})\n"
        )
    subprocess.run([sys.executable, "-c", code], check=True)
    (folder / "classes.txt").write_text("circle\nsquare\ntriangle\nstar\nring\nellipse\n")
    onnx_path = folder / ("demo.fp16.onnx" if fp16 else "demo.onnx")
    cam_rt = str(Path(sys.executable).with_name("cam-rt"))
    subprocess.run(
        [
            cam_rt,
            "export",
            str(folder / "demo.keras"),
            "-o",
            str(onnx_path),
            "--classes",
            str(folder / "classes.txt"),
            "--quiet",
            *(["--fp16"] if fp16 else []),
        ],
        check=True,
    )
    return onnx_path


def baselines(samples: list) -> dict[str, float]:
    fg = SeedScorer(7, THRESHOLDS)
    sal = SeedScorer(7, THRESHOLDS)
    for s in samples:
        first = [s.labels[0]]
        h, w = s.mask.shape
        fg.add(np.ones((h, w, 1), np.float32), first, s.mask)
        d = np.linalg.norm(
            s.image.astype(np.float32) - np.median(s.image.reshape(-1, 3), 0), axis=2
        )
        sal.add((d / max(float(d.max()), 1e-6))[..., None], first, s.mask)
    names = ["circle", "square", "triangle", "star", "ring", "ellipse"]
    return {
        "all-foreground": fg.report(names).miou,
        "colour saliency": sal.report(names).miou,
        "colour saliency best t": sal.report(names).best_threshold,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument(
        "--weights",
        type=Path,
        help="other demo weights, or a whole .keras model (default: the package's weights)",
    )
    parser.add_argument("--name", default="quality")
    args = parser.parse_args(argv)
    from cam_rt.export.synthetic import generate, write_voc
    from cam_rt.export.train_demo import HELD_OUT_SEED, mean_average_precision

    samples = generate(args.count, HELD_OUT_SEED)
    multi = sum(len(s.labels) > 1 for s in samples)
    print(
        f"config: held-out synthetic split, {len(samples)} images ({multi} multi-object), "
        f"thresholds 0.10..0.60"
    )
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = export_demo(root, args.weights)
        write_voc(root / "voc", samples, "val")
        items = voc_items(
            root / "voc" / "JPEGImages",
            root / "voc" / "SegmentationClass",
            root / "voc" / "ImageSets" / "Segmentation" / "val.txt",
        )
        session = CamSession(model)
        scores = np.stack(
            [
                r.probabilities
                for r in Explainer(session, ExplainConfig(classes=ClassSelection("all"))).explain(
                    [s.image for s in samples]
                )
            ]
        )
        truth = np.zeros_like(scores)
        for i, s in enumerate(samples):
            truth[i, list(s.labels)] = 1
        cls_map = mean_average_precision(scores, truth)
        print(f"classification mAP {cls_map:.4f}")
        configs = {
            "vanilla CAM": (None, False),
            "TTA mean": (TTAConfig(SCALES, True, "mean"), False),
            "TTA keras-explainable": (TTAConfig(SCALES, True, "keras-explainable"), False),
            "TTA occse": (TTAConfig(SCALES, True, "occse"), False),
            "TTA mean, predicted labels": (TTAConfig(SCALES, True, "mean"), True),
            "vanilla CAM, predicted labels": (None, True),
        }
        for name, (tta, predicted) in configs.items():
            selection = ClassSelection("predicted") if predicted else ClassSelection("all")
            explainer = Explainer(session, ExplainConfig(tta=tta, classes=selection))
            start = time.perf_counter()
            report = evaluate(explainer, items, THRESHOLDS, predicted_labels=predicted)
            seconds = time.perf_counter() - start
            rows[name] = {
                "miou": report.miou,
                "best_threshold": report.best_threshold,
                "seconds": seconds,
            }
            print(
                f"{name}: seed mIoU {report.miou:.4f} at t={report.best_threshold:.2f} "
                f"({seconds:.1f} s)"
            )
    base = baselines(samples)
    for name in ("all-foreground", "colour saliency"):
        rows[name] = {"miou": base[name], "best_threshold": float("nan"), "seconds": 0.0}
        print(f"{name}: mIoU {base[name]:.4f}")
    table = (
        f"held-out synthetic split: {len(samples)} images, {multi} with several objects; "
        f"classification mAP {cls_map:.3f}\n\n| seeds | mIoU | best t |\n|---|---|---|\n"
    )
    for k, v in rows.items():
        t = "" if np.isnan(v["best_threshold"]) else f"{v['best_threshold']:.2f}"
        table += f"| {k} | {100 * v['miou']:.1f} | {t} |\n"
    write_results(
        args.name,
        {"images": len(samples), "multi_object": multi, "map": cls_map, "rows": rows},
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
