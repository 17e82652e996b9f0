"""The README's main job: build a small CAM model, export it with ``cam-rt export``, check it.

    python -m cam_rt.export.demo --out demo-output

Every step runs the same commands a user runs; nothing is downloaded.
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
        x = layers.Conv2D(filters, 3, strides=stride, dilation_rate=dilation, padding="same",
                          use_bias=False, name=f"conv{i}")(x)  # fmt: skip
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
    x = layers.Conv2D(6, 1, use_bias=False, name="logits")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Activation("sigmoid", name="predictions")(x)
    return keras.Model(inputs, outputs, name="cam_rt_demo")


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
    print(f"demo: exported {onnx_path}; outputs are in {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
