"""The README's pictures of the outputs: ``cam-rt run`` with the trained demo model on held-out
synthetic images and on the committed photos (tests/data/photos), the files it writes copied
under ``benchmarks/results/pictures/`` (PNG re-encoded losslessly where that is smaller; the
pixels are the run's).

    python benchmarks/pictures.py                 # the demo model, exported once (TensorFlow)
    python benchmarks/pictures.py --model m.onnx  # any model file (the smoke test's)

Writes ``pictures.json``/``pictures.md`` (the files, their sizes and the commands) beside the
other results.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import CACHE, RESULTS, demo_files, write_results
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "photos"
MAX_BYTES = 150_000  # each picture; the README's total stays under 1 MB
SCALES = (1.0, 0.75, 0.6, 0.5, 0.375, 0.25)
SHOWN = {"cat": ("overlay", "heatmap"), "coffee": ("overlay",), "rocket": ("overlay",)}
CAM_RT = str(Path(sys.executable).with_name("cam-rt"))


def shapes_model() -> Path:
    """The trained demo model exported with its class names (the shapes), cached."""
    from cam_rt.export.synthetic import SHAPES

    keras_path, plain = demo_files()
    path = plain.with_name(plain.stem + "-shapes.onnx")
    if not path.is_file():
        classes = CACHE / "shapes.txt"
        classes.write_text("\n".join(SHAPES) + "\n")
        cmd = [CAM_RT, "export", str(keras_path), "-o", str(path), "--classes", str(classes)]
        subprocess.run([*cmd, "--quiet"], check=True)
    return path


def run(cmd: list[str], tmp: Path) -> str:
    """Run a cam-rt command; its command line, temporary folders and model named short."""
    subprocess.run(cmd, check=True)
    shown = " ".join(["cam-rt", *cmd[1:]]).replace(str(tmp) + "/", "")
    shown = shown.replace(str(ROOT) + "/", "")
    return shown.replace(cmd[2], Path(cmd[2]).name)


def records(outdir: Path) -> list[dict[str, Any]]:
    lines = (outdir / "results.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "error" not in r]


def copy_png(source: Path, target: Path, scaled: dict[str, float]) -> int:
    """Copy a PNG, re-encoded with Pillow's optimizer if that is smaller (same pixels); one
    above ``MAX_BYTES`` is scaled down (area filter) to the largest of ``SCALES`` that fits,
    noted in ``scaled``."""
    data = source.read_bytes()
    with Image.open(source) as im:
        picture = im.copy()
    for scale in SCALES:
        shown = picture
        if scale < 1.0:
            size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            shown = picture.convert("RGB").resize(size, Image.Resampling.BOX)
        buf = io.BytesIO()
        shown.save(buf, "PNG", optimize=True)
        if len(buf.getvalue()) < len(data) or scale < 1.0:
            data = buf.getvalue()
        if len(data) <= MAX_BYTES:
            break
    else:
        raise SystemExit(f"{source} does not fit in {MAX_BYTES} bytes at any scale")
    if scale < 1.0:
        scaled[target.name] = scale
    target.write_bytes(data)
    return len(data)


def synthetic_inputs(folder: Path, count: int) -> list[str]:
    """The first ``count`` held-out images of the demo (as ``make demo`` draws them)."""
    from cam_rt.export.synthetic import generate
    from cam_rt.export.train_demo import HELD_OUT_SEED

    folder.mkdir(parents=True)
    paths = []
    for i, sample in enumerate(generate(count, HELD_OUT_SEED)):
        path = folder / f"heldout_{i:02d}.png"
        Image.fromarray(sample.image).save(path)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX file (default: the demo model)")
    parser.add_argument("--count", type=int, default=4, help="synthetic images (the grid's)")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--out", type=Path, default=RESULTS / "pictures")
    parser.add_argument("--name", default="pictures", help="results file name")
    args = parser.parse_args()
    model = args.model or shapes_model()
    print(f"config: model={model} count={args.count} photos={args.photos} out={args.out}")
    args.out.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    scaled: dict[str, float] = {}
    commands: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        inputs = synthetic_inputs(tmp / "synthetic", args.count)
        syn, grid = tmp / "synthetic-out", tmp / "grid.png"
        save = "overlay,heatmap,colors,seeds,boxes"
        cmd = [CAM_RT, "run", str(model), *inputs, "-o", str(syn), "--tta", "--save", save]
        commands.append(run([*cmd, "--grid", str(grid), "-q"], tmp))
        written["grid.png"] = copy_png(grid, args.out / "grid.png", scaled)
        # the held-out image with the most classes explained shows the most
        best = max(records(syn), key=lambda r: len(r["classes"]))["name"]
        for kind in ("overlay", "heatmap", "colors", "seeds", "boxes"):
            name = f"synthetic.{kind}.png"
            written[name] = copy_png(syn / f"{best}.{kind}.png", args.out / name, scaled)
        photos = tmp / "photos-out"
        cmd = [CAM_RT, "run", str(model), str(args.photos), "-o", str(photos), "--tta"]
        commands.append(run([*cmd, "--save", "overlay,heatmap", "--classes", "top-1", "-q"], tmp))
        for record in records(photos):
            for kind in SHOWN.get(record["name"], ()):
                name = f"photo_{record['name']}.{kind}.png"
                source = photos / f"{record['name']}.{kind}.png"
                written[name] = copy_png(source, args.out / name, scaled)
    total = sum(written.values())
    if total > 1_000_000:
        raise SystemExit(f"the pictures are {total} bytes together (> 1 MB)")
    table = "| picture | bytes | scale |\n| --- | --- | --- |\n" + "".join(
        f"| {name} | {size} | {scaled.get(name, 1.0):g} |\n"
        for name, size in sorted(written.items())
    )
    table += f"| total | {total} |\n\n" + "".join(f"    {c}\n" for c in commands)
    print(table)
    print(
        write_results(args.name, {"files": written, "scaled": scaled, "commands": commands}, table)
    )


if __name__ == "__main__":
    main()
