"""The README's main job: export the trained demo model, run ``cam-rt`` on held-out images,
score its CAM seeds.

    python -m cam_rt.export.demo --out demo-output

Every step runs the commands a user runs (``cam-rt export``, ``cam-rt run``, ``cam-rt eval``);
nothing is downloaded: the held-out images are generated (``synthetic``), the weights ship in
the package (``train_demo``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cam-rt demo: export, run, evaluate")
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--count", type=int, default=300, help="held-out images to score")
    parser.add_argument("--show", type=int, default=8, help="images to draw overlays for")
    args = parser.parse_args(argv)
    from .synthetic import SHAPES, generate, write_voc
    from .train_demo import HELD_OUT_SEED, load_demo_model

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    keras_path = out / "demo.keras"
    load_demo_model().save(keras_path)
    classes = out / "classes.txt"
    classes.write_text("\n".join(SHAPES) + "\n")
    cam_rt = str(Path(sys.executable).with_name("cam-rt"))
    onnx_path = out / "demo.onnx"
    _run([cam_rt, "export", str(keras_path), "-o", str(onnx_path), "--classes", str(classes)])

    voc = out / "heldout"
    ids = write_voc(voc, generate(args.count, HELD_OUT_SEED), "val")
    shown = [str(voc / "JPEGImages" / f"{name}.png") for name in ids[: args.show]]
    maps = out / "maps"
    _run(
        [
            cam_rt,
            "run",
            str(onnx_path),
            *shown,
            "-o",
            str(maps),
            "--tta",
            "--save",
            "overlay,heatmap,maps,seeds,boxes",
            "--grid",
            str(out / "grid.png"),
        ]
    )
    _run(
        [
            cam_rt,
            "eval",
            str(onnx_path),
            "--voc-root",
            str(voc),
            "--split",
            "val",
            "--tta",
            "--thresholds",
            "0.10:0.61:0.01",
            "--json",
            str(out / "eval.json"),
            "--quiet",
        ]
    )
    print(
        f"demo: model {onnx_path}; overlays, heatmaps, seeds, boxes in {maps}/; "
        f"grid {out / 'grid.png'}; seed mIoU of {args.count} held-out images in {out / 'eval.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
