"""Benchmark: cam-rt against the TensorFlow way, end to end, on the same models and images.

The TensorFlow side is what a user runs today: the Keras model in TensorFlow with
keras-explainable's CAM and TTA semantics (``tests/ke_reference.py``), compiled with
``tf.function`` (dynamic H and W, so no retracing), PNG decoded with ``tf.io``. The cam-rt side
is the ONNX file exported from the same model, run by ``Explainer`` in ``keras-explainable`` TTA
mode (the same maps), PNG decoded with Pillow. Both start from a file and end with every
class's normalized maps at the image's resolution.

The two sides run in separate processes, alternating (cam-rt first in even rounds, TensorFlow
first in odd ones), so slow drifts of a shared machine hit both; each process warms up on the
first image, then times every image. Reported per workload and side: p50/p90/p99 latency per
image, images/s, process peak RSS, the maps' max difference between the sides, and the
model's FLOPs per image over the time (how far from the measured fp32 matrix-multiply peak).

Cold start: wall time of ``cam-rt run MODEL one.png`` as a new process against a Python script
that imports TensorFlow, loads the ``.keras`` model and computes the same CAM.

    python benchmarks/e2e.py                    # everything (about 25 minutes on 2 cores)
    python benchmarks/e2e.py --workloads demo-folder-tta --rounds 1
    python benchmarks/e2e.py --quick            # the smoke run of the test suite
    python benchmarks/e2e.py --variants openvino-bf16,int8,openvino-int8   # more cam-rt sides

Variants run the cam-rt side again on another engine or file, in the same alternation:
``int8`` (a ``cam-rt quantize`` file, 8 calibration images of another seed, ONNX Runtime CPU),
``fp32-external`` (``cam-rt export --external-data``: the weights in a side file; its cold start
is measured too),
``openvino-auto`` (``--precision auto``: the measured choice) / ``openvino-bf16`` /
``openvino-fp32`` / ``openvino-int8`` (the OpenVINO execution provider, run
by the interpreter of ``--openvino-python``, default ``.venv-openvino/bin/python``: it cannot
share an environment with plain onnxruntime). Their map difference is measured against the
TensorFlow side too, so a faster precision never hides its error.

Models: the built-in ResNet38-d (random weights, seed 0) and the trained demo model, exported
once into ``.bench-cache/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CACHE,
    demo_files,
    matmul_peak_gflops,
    model_gflop,
    plot_bars,
    resnet38d_file,
    run_process,
    summarize,
    write_results,
)

HERE = Path(__file__).resolve().parent
TTA_SCALES = (0.5, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Workload:
    name: str
    model: str  # "resnet38d" or "demo"
    size: int  # square side; 0: the demo set's 96-192 px images
    images: int
    tta: bool


WORKLOADS = {
    w.name: w
    for w in (
        Workload("resnet38d-224", "resnet38d", 224, 8, False),
        Workload("resnet38d-320", "resnet38d", 320, 6, False),
        Workload("resnet38d-224-tta", "resnet38d", 224, 3, True),
        Workload("resnet38d-320-tta", "resnet38d", 320, 2, True),
        Workload("demo-folder", "demo", 0, 100, False),
        Workload("demo-folder-tta", "demo", 0, 100, True),
    )
}
#: cam-rt sides beyond ONNX Runtime fp32: (device, precision, file: "" (the export), "int8"
#: (cam-rt quantize) or "external" (cam-rt export --external-data))
VARIANTS = {
    "int8": ("cpu", "auto", "int8"),
    "fp32-external": ("cpu", "auto", "external"),
    "openvino-auto": ("openvino", "auto", ""),
    "openvino-fp32": ("openvino", "fp32", ""),
    "openvino-bf16": ("openvino", "bf16", ""),
    "openvino-int8": ("openvino", "fp32", "int8"),
}
QUICK = (
    Workload("demo-folder", "demo", 0, 3, False),
    Workload("demo-folder-tta", "demo", 0, 3, True),
)


# ---------------------------------------------------------------------------------------------
# Workers: one process per side and round.


def _tf_side(spec: dict[str, Any]) -> Any:
    """The TensorFlow way: path -> maps, through a compiled keras-explainable explain."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import ke_reference

    from cam_rt.export._deps import import_keras, import_tensorflow
    from cam_rt.export.expose import expose
    from cam_rt.export.keras_graph import replay
    from cam_rt.export.preprocess import preprocessing_for
    from cam_rt.export.sources import load_source

    tf = import_tensorflow()
    keras = import_keras()
    if spec["model"] == "resnet38d":
        loaded = load_source("resnet38d", "none")
        pre = preprocessing_for("torch")
    else:
        loaded = load_source(spec["keras"])
        pre = preprocessing_for("none")
    model = loaded.model
    graph = replay(model, keras, (None, None))
    head = expose(graph)
    # keras-explainable's expose: [scores, features]; W is the (linear) head's kernel.
    exposed = keras.Model(graph.input, [head.check, head.features])
    cam_weights, _ = head.head.collapsed()
    scale = tf.constant(pre.scale, tf.float32)
    mean = tf.constant(pre.mean, tf.float32)
    std = tf.constant(pre.std, tf.float32)
    bgr = pre.channel_order == "BGR"

    def preprocess(x: Any) -> Any:
        x = x[..., ::-1] if bgr else x
        return (x * scale - mean) / std

    scales = TTA_SCALES if spec["tta"] else None
    explain = ke_reference.compiled(exposed, cam_weights, preprocess, scales, True)

    def run(path: str) -> np.ndarray:
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        return np.asarray(explain(tf.cast(image, tf.float32)[None]))[0]

    return run


def _cam_rt_side(spec: dict[str, Any]) -> Any:
    from cam_rt.runtime import (
        CamSession,
        ClassSelection,
        ExplainConfig,
        Explainer,
        SessionConfig,
        TTAConfig,
    )
    from cam_rt.runtime.backend.providers import OpenVINOConfig
    from cam_rt.runtime.batch.io import read_image

    tta = TTAConfig(TTA_SCALES, True, "keras-explainable") if spec["tta"] else None
    config = SessionConfig(
        providers=(spec.get("device", "cpu"),),
        openvino=OpenVINOConfig(precision=spec.get("precision", "auto")),
        static_shapes=spec.get("device") == "openvino",  # a session per shape, as measured
    )
    session = CamSession(spec["onnx"], config)
    if spec.get("device") == "openvino" and session.providers[0] != "OpenVINOExecutionProvider":
        raise SystemExit(f"OpenVINO is not available to {sys.executable}")
    explainer = Explainer(session, ExplainConfig(tta=tta, classes=ClassSelection("all")))

    def run(path: str) -> np.ndarray:
        (result,) = explainer.explain(read_image(Path(path)).pixels)
        return result.maps

    return run


def worker(side: str, spec: dict[str, Any]) -> None:
    """Time every image of ``spec['images']``; JSON on stdout; maps to ``spec['maps']``."""
    start = time.perf_counter()
    run = _tf_side(spec) if side == "tf" else _cam_rt_side(spec)
    paths = spec["images"]
    first = time.perf_counter()
    run(paths[0])  # warm-up: tf.function tracing, ONNX Runtime's first run
    ready = time.perf_counter()
    latencies, maps = [], {}
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        out = run(path)
        latencies.append(time.perf_counter() - t0)
        if spec.get("maps"):
            maps[f"m{i}"] = out.astype(np.float32)
    if spec.get("maps"):
        np.savez(spec["maps"], **maps)
    print(
        json.dumps(
            {
                "setup_s": first - start,
                "warmup_s": ready - first,
                "latencies": latencies,
            }
        )
    )


# ---------------------------------------------------------------------------------------------
# The parent: images, models, rounds, comparison, tables.


def make_images(folder: Path, w: Workload) -> list[str]:
    from PIL import Image

    from cam_rt.export.synthetic import generate

    folder.mkdir(parents=True, exist_ok=True)
    size = (w.size, w.size) if w.size else None
    paths = []
    for i, sample in enumerate(generate(w.images, 7, size)):
        path = folder / f"{w.name}_{i:04d}.png"
        Image.fromarray(sample.image).save(path)
        paths.append(str(path))
    return paths


def pass_sizes(h: int, w: int, tta: bool) -> list[tuple[int, int]]:
    """Input sizes of one image's passes in keras-explainable mode (1.0 always, then scales)."""
    if not tta:
        return [(h, w)]
    sizes = []
    for s in (1.0, *TTA_SCALES):
        size = (int(np.float32(s) * np.float32(h)), int(np.float32(s) * np.float32(w)))
        sizes += [size, size]  # and its flip
    return sizes


def workload_gflop(onnx_path: Path, paths: list[str], tta: bool) -> float:
    """Mean model GFLOP per image (every pass) over ``paths``."""
    from PIL import Image

    cache: dict[tuple[int, int], float] = {}
    total = 0.0
    for p in paths:
        with Image.open(p) as im:
            w, h = im.size
        for size in pass_sizes(h, w, tta):
            if size not in cache:
                cache[size] = model_gflop(onnx_path, *size)
            total += cache[size]
    return total / len(paths)


def keras_file(model: str) -> Path:
    if model == "demo":
        return demo_files()[0]
    path = CACHE / "resnet38d.keras"
    if not path.is_file():
        code = (
            "from cam_rt.export.sources import load_source\n"
            f"load_source('resnet38d', 'none').model.save({str(path)!r})\n"
        )
        run_checked([sys.executable, "-c", code])
    return path


def external_file(model: str) -> Path:
    """The model exported with ``--external-data`` (weights in a side file), once."""
    folder = CACHE / f"{model}-external"
    out = folder / f"{model}.onnx"
    if not out.is_file():
        cam_rt = str(Path(sys.executable).with_name("cam-rt"))
        source = (
            ["resnet38d", "--weights", "none"] if model == "resnet38d" else [str(keras_file(model))]
        )
        run_checked([cam_rt, "export", *source, "-o", str(out), "--external-data", "--quiet"])
    return out


def int8_file(model: str, onnx_path: Path, size: int) -> Path:
    """``cam-rt quantize`` of the model, 8 calibration images of another seed, no floor."""
    out = CACHE / f"{onnx_path.stem}.int8.onnx"
    if not out.is_file():
        from PIL import Image

        from cam_rt.export.synthetic import generate

        with tempfile.TemporaryDirectory() as tmp:
            for i, sample in enumerate(generate(8, 3, (size, size) if size else None)):
                Image.fromarray(sample.image).save(Path(tmp) / f"c{i}.png")
            cam_rt = str(Path(sys.executable).with_name("cam-rt"))
            cmd = [cam_rt, "quantize", str(onnx_path), "--calibration", tmp, "-o", str(out)]
            result = run_checked([*cmd, "--images", "8", "--no-tta", "--floor", "0"])
            print(f"quantized {model}: {result.stdout.strip()} ({result.seconds:.0f} s)")
    return out


def map_diff(a_path: Path, b_path: Path) -> float:
    """Max abs difference of two sides' maps (same images, same order)."""
    a, b = np.load(a_path), np.load(b_path)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a.files)


def mean_map_diff(a_path: Path, b_path: Path) -> float:
    """Mean abs difference of two sides' maps over every pixel of every image and class."""
    a, b = np.load(a_path), np.load(b_path)
    total = sum(float(np.abs(a[k] - b[k]).sum()) for k in a.files)
    return total / sum(a[k].size for k in a.files)


def run_checked(cmd: list[str]) -> Any:
    result = run_process(cmd)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return result


COLD_TF = """
import sys, numpy as np
import tensorflow as tf, keras
sys.path.insert(0, sys.argv[4])
import ke_reference
model = keras.models.load_model(sys.argv[1])
score, feature = sys.argv[5].split(",")
outputs = [model.get_layer(score).output, model.get_layer(feature).output]
exposed = keras.Model(model.inputs, outputs)
weights = np.asarray(model.get_layer("logits").kernel)[0, 0]
x = tf.cast(tf.io.decode_png(tf.io.read_file(sys.argv[2]), channels=3), tf.float32)[None]
if sys.argv[6] == "torch":
    x = (x / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
maps = ke_reference.explain_cam(exposed, weights, x, np.arange(weights.shape[1])[None])
np.save(sys.argv[3], np.asarray(maps)[0])
"""


def cold_start(model: str, onnx_path: Path, image: str, repeats: int, tmp: Path) -> dict:
    keras_path = keras_file(model)
    cam_rt = str(Path(sys.executable).with_name("cam-rt"))
    layers = "avg_pool,features" if model == "demo" else "avg_pool,s5_ac"
    pre = "none" if model == "demo" else "torch"
    samples: dict[str, list[float]] = {"cam-rt": [], "tf": []}
    rss: dict[str, list[float]] = {"cam-rt": [], "tf": []}
    for r in range(repeats):
        for side in ("cam-rt", "tf") if r % 2 == 0 else ("tf", "cam-rt"):
            if side == "cam-rt":
                out = tmp / f"cold_{model}_{r}"
                cmd = [cam_rt, "run", str(onnx_path), image, "-o", str(out), "--save", "maps"]
                cmd += ["--classes", "all", "-q"]
            else:
                npy = tmp / f"cold_{model}_{r}.npy"
                cmd = [sys.executable, "-c", COLD_TF, str(keras_path), image, str(npy)]
                cmd += [str(HERE.parent / "tests"), layers, pre]
            result = run_checked(cmd)
            samples[side].append(result.seconds)
            rss[side].append(result.peak_rss_mib)
            print(f"cold start {model} {side}: {result.seconds:.2f} s")
    a, b = summarize(samples["cam-rt"]), summarize(samples["tf"])
    return {
        "model": model,
        "cam_rt_s": a.as_dict(),
        "tf_s": b.as_dict(),
        "cam_rt_rss_mib": max(rss["cam-rt"]),
        "tf_rss_mib": max(rss["tf"]),
        "speedup": b.p50 / a.p50,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list")
    parser.add_argument("--rounds", type=int, default=2, help="alternations per workload")
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="demo model, 3 images, 1 round")
    parser.add_argument("--name", default="e2e")
    parser.add_argument("--variants", default="", help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--openvino-python",
        default=str(HERE.parent / ".venv-openvino" / "bin" / "python"),
        help="the interpreter with onnxruntime-openvino (for openvino-* variants)",
    )
    parser.add_argument("--worker", choices=["tf", "cam-rt"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, json.loads(args.spec))
        return 0
    if args.quick:
        workloads, rounds, cold_repeats, peak_n = list(QUICK), 1, 1, 512
    else:
        names = [n.strip() for n in args.workloads.split(",") if n.strip()]
        unknown = [n for n in names if n not in WORKLOADS]
        if unknown:
            parser.error(f"unknown workloads {unknown}; choose from {', '.join(WORKLOADS)}")
        workloads, rounds, cold_repeats, peak_n = (
            [WORKLOADS[n] for n in names],
            args.rounds,
            (args.cold_repeats),
            2048,
        )
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if any(v not in VARIANTS for v in variants):
        parser.error(f"unknown variants {variants}; choose from {', '.join(VARIANTS)}")
    wants_ov = any(VARIANTS[v][0] == "openvino" for v in variants)
    if wants_ov and not Path(args.openvino_python).is_file():
        parser.error(f"--openvino-python {args.openvino_python} does not exist")
    peak = matmul_peak_gflops(peak_n)
    print(
        f"config: workloads {[w.name for w in workloads]}, rounds {rounds}, TTA scales "
        f"{TTA_SCALES} + flip (keras-explainable mode), fp32 matmul peak {peak:.0f} GFLOP/s, "
        f"variants {variants or 'none'}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for w in workloads:
            onnx_path = resnet38d_file() if w.model == "resnet38d" else demo_files()[1]
            paths = make_images(tmp / w.name, w)
            gflop = workload_gflop(onnx_path, paths, w.tta)
            spec = {"model": w.model, "onnx": str(onnx_path), "tta": w.tta, "images": paths}
            if w.model == "demo":
                spec["keras"] = str(demo_files()[0])
            sides = ["cam-rt", "tf", *variants]
            lat: dict[str, list[float]] = {side: [] for side in sides}
            rss: dict[str, float] = {side: 0.0 for side in sides}
            for r in range(rounds):
                order = sides[r % len(sides) :] + sides[: r % len(sides)]
                for side in order if r % 2 == 0 else order[::-1]:
                    side_spec = {
                        **spec,
                        "maps": str(tmp / f"{w.name}_{side}.npz") if r == 0 else "",
                    }
                    python, worker_side = sys.executable, "tf" if side == "tf" else "cam-rt"
                    if side in VARIANTS:
                        device, precision, kind = VARIANTS[side]
                        side_spec.update(device=device, precision=precision)
                        if kind == "int8":
                            side_spec["onnx"] = str(int8_file(w.model, onnx_path, w.size))
                        elif kind == "external":
                            side_spec["onnx"] = str(external_file(w.model))
                        if device == "openvino":
                            python = args.openvino_python
                    cmd = [python, __file__, "--worker", worker_side, "--spec"]
                    result = run_checked([*cmd, json.dumps(side_spec)])
                    report = json.loads(result.stdout.strip().splitlines()[-1])
                    lat[side] += report["latencies"]
                    rss[side] = max(rss[side], result.peak_rss_mib)
                    s = summarize(report["latencies"])
                    print(
                        f"{w.name} round {r} {side}: p50 {s.p50 * 1e3:.1f} ms, setup "
                        f"{report['setup_s']:.1f} s, warm-up {report['warmup_s']:.2f} s, "
                        f"peak RSS {result.peak_rss_mib:.0f} MiB; samples "
                        + " ".join(f"{v * 1e3:.1f}" for v in report["latencies"][:12])
                    )
            tf_maps = tmp / f"{w.name}_tf.npz"
            diff = map_diff(tmp / f"{w.name}_cam-rt.npz", tf_maps)
            a, b = summarize(lat["cam-rt"]), summarize(lat["tf"])
            row = {
                "workload": w.name,
                "images": len(paths),
                "tta": w.tta,
                "gflop_per_image": gflop,
                "cam_rt": a.as_dict(),
                "tf": b.as_dict(),
                "cam_rt_rss_mib": rss["cam-rt"],
                "tf_rss_mib": rss["tf"],
                "speedup_p50": b.p50 / a.p50,
                "max_abs_map_diff": diff,
                "mean_abs_map_diff": mean_map_diff(tmp / f"{w.name}_cam-rt.npz", tf_maps),
                "cam_rt_peak_share": gflop / a.mean / peak,
                "tf_peak_share": gflop / b.mean / peak,
                "variants": {},
            }
            for v in variants:
                sv = summarize(lat[v])
                row["variants"][v] = {
                    "stats": sv.as_dict(),
                    "rss_mib": rss[v],
                    "speedup_p50": b.p50 / sv.p50,
                    "max_abs_map_diff": map_diff(tmp / f"{w.name}_{v}.npz", tf_maps),
                    "mean_abs_map_diff": mean_map_diff(tmp / f"{w.name}_{v}.npz", tf_maps),
                    "peak_share": gflop / sv.mean / peak,
                }
                print(
                    f"{w.name} {v}: p50 {sv.p50 * 1e3:.1f} ms -> {b.p50 / sv.p50:.2f}x TF; "
                    f"map diff vs TF max {row['variants'][v]['max_abs_map_diff']:.2e} mean "
                    f"{row['variants'][v]['mean_abs_map_diff']:.2e}"
                )
            rows.append(row)
            print(
                f"{w.name}: cam-rt p50 {a.p50 * 1e3:.1f} ms vs TF {b.p50 * 1e3:.1f} ms -> "
                f"{row['speedup_p50']:.2f}x; RSS {rss['cam-rt']:.0f} vs {rss['tf']:.0f} MiB; "
                f"max map diff {diff:.2e}; {gflop:.1f} GFLOP/image = "
                f"{row['cam_rt_peak_share']:.0%} / {row['tf_peak_share']:.0%} of peak"
            )
        cold_models = ["demo"] if args.quick else sorted({w.model for w in workloads})
        cold = []
        for model in cold_models:
            image = make_images(
                tmp / "cold", Workload("cold", model, 224 if model != "demo" else 0, 1, False)
            )
            onnx_path = resnet38d_file() if model == "resnet38d" else demo_files()[1]
            files = [(model, onnx_path)]
            if "fp32-external" in variants:
                files.append((f"{model} (external data)", external_file(model)))
            for label, path in files:
                cold.append(cold_start(model, path, image[0], cold_repeats, tmp))
                c = cold[-1]
                c["model"] = label
                print(
                    f"cold start {label}: cam-rt {c['cam_rt_s']['p50']:.2f} s vs TF "
                    f"{c['tf_s']['p50']:.2f} s -> {c['speedup']:.1f}x"
                )
    table = _table(rows, cold, peak)
    print(table)
    path = write_results(
        args.name,
        {"peak_gflops": peak, "rounds": rounds, "variants": variants, "rows": rows, "cold": cold},
        table,
    )
    series = {
        "TensorFlow (tf.function)": [r["tf"]["p50"] * 1e3 for r in rows],
        "cam-rt (ONNX Runtime)": [r["cam_rt"]["p50"] * 1e3 for r in rows],
    }
    for v in variants:
        series[f"cam-rt {v}"] = [r["variants"][v]["stats"]["p50"] * 1e3 for r in rows]
    plot_bars(
        path.with_suffix(".png"),
        [r["workload"] for r in rows],
        series,
        "p50 latency per image (ms)",
        "CAM end to end, file to normalized maps: TensorFlow vs cam-rt",
    )
    return 0


def fp32_share(variant: str, share: float) -> str:
    """The share of the fp32 peak, meaningful for fp32 sides only."""
    return f"{share:.0%}" if "fp32" in variant else "n/a (not fp32)"


def _table(rows: list[dict], cold: list[dict], peak: float) -> str:
    out = (
        f"Latency per image, file to normalized maps of every class; fp32 matmul peak "
        f"{peak:.0f} GFLOP/s.\n\n"
        "| workload | n | side | p50 ms | p90 ms | p99 ms | images/s | peak RSS MiB | "
        "% of fp32 peak | speed-up | max map diff vs TF | mean map diff vs TF |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for r in rows:
        for side, key in (("TensorFlow", "tf"), ("cam-rt", "cam_rt")):
            s = r[key]
            out += (
                f"| {r['workload']} | {s['n']} | {side} | {s['p50'] * 1e3:.1f} | "
                f"{s['p90'] * 1e3:.1f} | {s['p99'] * 1e3:.1f} | {1 / s['mean']:.2f} | "
                f"{r[key + '_rss_mib']:.0f} | {r[key + '_peak_share']:.0%} | "
                + (
                    f"{r['speedup_p50']:.2f}x | {r['max_abs_map_diff']:.1e} | "
                    f"{r.get('mean_abs_map_diff', float('nan')):.1e} |\n"
                    if key == "cam_rt"
                    else "| | |\n"
                )
            )
        for v, d in r.get("variants", {}).items():
            s = d["stats"]
            out += (
                f"| {r['workload']} | {s['n']} | cam-rt {v} | {s['p50'] * 1e3:.1f} | "
                f"{s['p90'] * 1e3:.1f} | {s['p99'] * 1e3:.1f} | {1 / s['mean']:.2f} | "
                f"{d['rss_mib']:.0f} | {fp32_share(v, d['peak_share'])} | "
                f"{d['speedup_p50']:.2f}x | {d['max_abs_map_diff']:.1e} | "
                f"{d.get('mean_abs_map_diff', float('nan')):.1e} |\n"
            )
    if cold:
        out += (
            "\nCold start, new process to the first map on disk (one image):\n\n"
            "| model | cam-rt s | TensorFlow s | speed-up | cam-rt RSS MiB | TF RSS MiB |\n"
            "|---|---|---|---|---|---|\n"
        )
        for c in cold:
            out += (
                f"| {c['model']} | {c['cam_rt_s']['p50']:.2f} | {c['tf_s']['p50']:.2f} | "
                f"{c['speedup']:.1f}x | {c['cam_rt_rss_mib']:.0f} | {c['tf_rss_mib']:.0f} |\n"
            )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
