"""The README's main job: build a small CAM model, export it, run ``cam-rt`` on images.

    python -m cam_rt.export.demo --out demo-output

Every step runs the same commands a user runs (``cam-rt export``, ``cam-rt run``); nothing is
downloaded. The model is small and untrained until the trained demo model lands (issue 5),
so its maps show the pipeline working, not object localisation.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["build_demo_model", "main"]


def build_demo_model(seed: int = 0) -> object:
    """A small fully convolutional classifier with a dilated conv and a 1x1-conv CAM head."""
    from ._deps import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((None, None, 3), name="images")
    x = layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    for i, (filters, stride, dilation) in enumerate([(16, 2, 1), (32, 2, 1), (48, 1, 2)]):
        x = layers.Conv2D(
            filters,
            3,
            strides=stride,
            dilation_rate=dilation,
            padding="same",
            use_bias=False,
            name=f"conv{i}",
        )(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
    x = layers.Conv2D(6, 1, use_bias=False, name="logits")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Activation("sigmoid", name="predictions")(x)
    return keras.Model(inputs, outputs, name="cam_rt_demo")


def write_demo_images(folder: Path, count: int = 6, seed: int = 0) -> None:
    """A few images of coloured shapes on smooth backgrounds (PNG)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        h, w = (int(v) for v in rng.integers(96, 193, 2))
        ramp = np.linspace(0, 1, w)[None, :, None]
        a, b = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
        background = np.broadcast_to(a + (b - a) * ramp, (h, w, 3)).astype(np.uint8)
        picture = Image.fromarray(np.ascontiguousarray(background))
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(1, 4))):
            r = int(rng.integers(min(h, w) // 8, min(h, w) // 4))
            cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            else:
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
        picture.save(folder / f"shapes_{index}.png")


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cam-rt demo: export, then check")
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = build_demo_model()
    keras_path = out / "demo.keras"
    model.save(keras_path)  # type: ignore[attr-defined]
    classes = out / "classes.txt"
    classes.write_text("circle\nsquare\ntriangle\nstar\nring\nellipse\n")
    cam_rt = str(Path(sys.executable).with_name("cam-rt"))
    onnx_path = out / "demo.onnx"
    _run([cam_rt, "export", str(keras_path), "-o", str(onnx_path), "--classes", str(classes)])
    images = out / "images"
    write_demo_images(images)
    maps = out / "maps"
    grid = out / "grid.png"
    _run(
        [
            cam_rt,
            "run",
            str(onnx_path),
            str(images),
            "-o",
            str(maps),
            "--tta",
            "--classes",
            "top-2",
            "--save",
            "overlay,heatmap,maps,seeds,boxes",
            "--grid",
            str(grid),
        ]
    )
    print(f"demo: model {onnx_path}, maps and overlays in {maps}/, grid picture {grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
