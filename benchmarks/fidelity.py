"""CAM fidelity of the fast precisions vs fp32, on the trained demo model (issues 7 and 8).

For each variant: the seed mIoU of the held-out synthetic split (OC-CSE protocol, thresholds
0.10..0.60, ground-truth classes) with vanilla CAM and with TTA (mean mode, scales 0.5-2 and
flip), its change from ONNX Runtime fp32 on the CPU, and the distance of its normalized maps
to fp32's on the same images (max and mean absolute difference, mean cosine similarity), plus
the time per image with TTA. Variants:

- ``fp16``: a ``cam-rt export --fp16`` file on ONNX Runtime's CPU engine;
- ``int8``, ``int8-entropy``, ``int8-percentile``, ``int8-head``: ``cam-rt quantize`` files
  (static QDQ, per-channel weights) calibrated on images of a training seed (never the held-out
  ones) with minmax / entropy / percentile ranges; ``int8-head`` also quantizes the CAM head;
- ``openvino-fp32``, ``openvino-bf16``, ``openvino-int8``: the OpenVINO execution provider
  (only where onnxruntime-openvino is installed, i.e. in ``.venv-openvino``).

    python benchmarks/fidelity.py                                  # exports the demo (TensorFlow)
    .venv-openvino/bin/python benchmarks/fidelity.py --model build/openvino/demo.onnx \\
        --variants openvino-fp32,openvino-bf16,int8,openvino-int8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ExplainConfig,
    Explainer,
    SessionConfig,
    TTAConfig,
    available_providers,
)
from cam_rt.runtime.backend.providers import OpenVINOConfig
from cam_rt.runtime.tools.evaluate import SeedScorer
from cam_rt.runtime.tools.quantize import QuantizeConfig, map_fidelity, quantize_model

THRESHOLDS = tuple(round(0.10 + 0.01 * i, 2) for i in range(51))  # 0.10 .. 0.60
TTA = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "mean")
CALIBRATION_SEED = 2  # a training seed: calibration never sees the held-out split
VARIANTS = (
    "fp16",
    "int8",
    "int8-entropy",
    "int8-percentile",
    "int8-head",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
)


def score(session: CamSession, samples: list, tta: TTAConfig | None) -> tuple[float, list, float]:
    """Seed mIoU at the best threshold, the maps, and seconds per image."""
    explainer = Explainer(session, ExplainConfig(tta=tta, classes=ClassSelection("all")))
    scorer = SeedScorer(len(session.class_names) + 1, THRESHOLDS)
    maps = []
    explainer.explain(samples[0].image)  # first-shape costs are not the steady state
    start = time.perf_counter()
    for s in samples:
        (r,) = explainer.explain(s.image, labels=[sorted(s.labels)])
        scorer.add(r.maps, r.class_ids, s.mask)
        maps.append(r.maps)
    seconds = (time.perf_counter() - start) / len(samples)
    return scorer.report(session.class_names).miou, maps, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="the demo's fp32 ONNX file (default: export)")
    parser.add_argument("--fp16-model", type=Path, help="its --fp16 export (default: export)")
    parser.add_argument("--count", type=int, default=300, help="held-out images")
    parser.add_argument("--calibration", type=int, default=32, help="int8 calibration images")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--name", default="fidelity")
    args = parser.parse_args(argv)
    from cam_rt.export.synthetic import generate
    from cam_rt.export.train_demo import HELD_OUT_SEED

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    has_ov = "OpenVINOExecutionProvider" in available_providers()
    skipped = [v for v in variants if v.startswith("openvino") and not has_ov]
    variants = [v for v in variants if v not in skipped]
    samples = generate(args.count, HELD_OUT_SEED)
    calibration = [s.image for s in generate(args.calibration, CALIBRATION_SEED)]
    print(
        f"config: demo model, {len(samples)} held-out images, thresholds 0.10..0.60, TTA "
        f"{TTA.scales} + flip (mean); int8 calibration {len(calibration)} images of seed "
        f"{CALIBRATION_SEED}; variants {', '.join(variants)}"
        + (f" (skipped, no OpenVINO EP: {', '.join(skipped)})" if skipped else "")
    )
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.model is None or ("fp16" in variants and args.fp16_model is None):
            from quality import export_demo

            model = args.model or export_demo(root)
            fp16_model = args.fp16_model or (
                export_demo(root, fp16=True) if "fp16" in variants else None
            )
        else:
            model, fp16_model = args.model, args.fp16_model
        cpu = SessionConfig(providers=("cpu",))
        reference = CamSession(model, cpu)
        ref: dict[str, tuple[float, list, float]] = {}
        for mode, tta in (("vanilla", None), ("tta", TTA)):
            ref[mode] = score(reference, samples, tta)
        rows["fp32 (ONNX Runtime CPU)"] = {
            "vanilla_miou": ref["vanilla"][0],
            "tta_miou": ref["tta"][0],
            "tta_ms_per_image": 1000 * ref["tta"][2],
        }
        print(
            f"fp32: vanilla {100 * ref['vanilla'][0]:.2f}, TTA {100 * ref['tta'][0]:.2f} mIoU, "
            f"{1000 * ref['tta'][2]:.1f} ms/image with TTA"
        )
        int8_files: dict[str, Path] = {}

        def int8_file(method: str, head_float: bool) -> Path:
            key = f"{method}-{head_float}"
            if key not in int8_files:
                out = root / f"demo.int8.{key}.onnx"
                start = time.perf_counter()
                config = QuantizeConfig(
                    method=method,  # type: ignore[arg-type]
                    keep_head_float=head_float,
                    max_images=len(calibration),
                    floor=0.0,
                )
                quantize_model(model, calibration, out, config)
                print(
                    f"quantized ({method}, head {'float' if head_float else 'int8'}) in "
                    f"{time.perf_counter() - start:.0f} s"
                )
                int8_files[key] = out
            return int8_files[key]

        ov = {
            p: SessionConfig(
                providers=("openvino",), openvino=OpenVINOConfig(precision=p), static_shapes=True
            )
            for p in ("fp32", "bf16")
        }  # type: ignore[arg-type]
        for variant in variants:
            if variant == "fp16":
                assert fp16_model is not None
                session = CamSession(fp16_model, cpu)
            elif variant.startswith("int8"):
                method = {"int8-entropy": "entropy", "int8-percentile": "percentile"}.get(
                    variant, "minmax"
                )
                session = CamSession(int8_file(method, variant != "int8-head"), cpu)
            elif variant == "openvino-int8":
                session = CamSession(int8_file("minmax", True), ov["fp32"])
            else:
                session = CamSession(model, ov[variant.split("-")[1]])
            row: dict[str, float | str] = {"precision": session.precision}
            for mode, tta in (("vanilla", None), ("tta", TTA)):
                miou, maps, seconds = score(session, samples, tta)
                fid = map_fidelity(ref[mode][1], maps)
                row[f"{mode}_miou"] = miou
                row[f"{mode}_delta_points"] = 100 * (miou - ref[mode][0])
                row[f"{mode}_max_abs"] = fid.max_abs
                row[f"{mode}_mean_abs"] = fid.mean_abs
                row[f"{mode}_cosine"] = fid.mean_cosine
                if tta is not None:
                    row["tta_ms_per_image"] = 1000 * seconds
            rows[variant] = row
            print(
                f"{variant} [{row['precision']}]: TTA mIoU {100 * row['tta_miou']:.2f} "
                f"({row['tta_delta_points']:+.2f} points; vanilla "
                f"{row['vanilla_delta_points']:+.2f}), maps vs fp32 max abs "
                f"{row['tta_max_abs']:.4f} mean abs {row['tta_mean_abs']:.5f} cosine "
                f"{row['tta_cosine']:.5f}, {row['tta_ms_per_image']:.1f} ms/image"
            )
    table = (
        f"demo model, {len(samples)} held-out synthetic images; seeds with ground-truth classes, "
        "best threshold in 0.10..0.60; map differences of normalized maps vs fp32 on the CPU\n\n"
        "| variant | precision | vanilla mIoU (change) | TTA mIoU (change) | TTA maps max abs | "
        "mean abs | cosine | TTA ms/image |\n|---|---|---|---|---|---|---|---|\n"
    )
    for name, r in rows.items():
        if "precision" not in r:
            table += (
                f"| {name} | fp32 | {100 * r['vanilla_miou']:.2f} | {100 * r['tta_miou']:.2f} | "
                f"reference | | | {r['tta_ms_per_image']:.1f} |\n"
            )
            continue
        table += (
            f"| {name} | {r['precision']} | {100 * r['vanilla_miou']:.2f} "
            f"({r['vanilla_delta_points']:+.2f}) | {100 * r['tta_miou']:.2f} "
            f"({r['tta_delta_points']:+.2f}) | {r['tta_max_abs']:.4f} | {r['tta_mean_abs']:.5f} | "
            f"{r['tta_cosine']:.5f} | {r['tta_ms_per_image']:.1f} |\n"
        )
    write_results(
        args.name,
        {
            "images": len(samples),
            "calibration_images": len(calibration),
            "skipped": skipped,
            "rows": rows,
        },
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
