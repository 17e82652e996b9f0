"""The built-in ResNet38-d (wide ResNet-38 with dilation, output stride 8), as in resnet38d-tf.

Architecture: ``s0/g0/cv`` 3x3 64; s1, s2, s3 of 3,
3 and 6 pre-activation blocks (128, 256, 512 channels, each stage's first block with stride 2);
s4 of 3 blocks 512 -> 1024 with dilation 2 (the first block's first conv undilated); s5 of two
bottlenecks with dilation 4 (1024 -> 2048, 2048 -> 4096); then ``s5/bn``, ``s5/ac``, ``logits``
(1x1, no bias), ``avg_pool`` and ``predictions`` (sigmoid). All convs ``same``, no bias. With
20 classes it has 105,200,576 parameters.

Keras 3 refuses ``/`` in layer names, so the Keras 3 model names each layer with ``_`` in place
of ``/`` (``s5/ac`` -> ``s5_ac``); :func:`original_name` maps back. ``tf_keras`` builds keep the
original names (``legacy_names=True``), which is what the released Keras-2 HDF5 files use.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from cam_rt.runtime.errors import ModelLoadError

__all__ = [
    "RESNET38D_PARAMS_20",
    "build_resnet38d",
    "keras_name",
    "load_resnet38d_weights",
    "original_name",
]

#: Parameter count of the 20-class model (all weights, BatchNorm moving statistics included).
RESNET38D_PARAMS_20 = 105_200_576

# (stage, blocks, mid channels, out channels, stride of the first block, dilation, first dilation)
_STAGES = (
    ("s1", 3, 128, 128, 2, 1, 1),
    ("s2", 3, 256, 256, 2, 1, 1),
    ("s3", 6, 512, 512, 2, 1, 1),
    ("s4", 3, 512, 1024, 1, 2, 1),
)
# (block, mid1 (1x1), mid2 (3x3), out channels, dilation)
_BOTTLENECKS = (("b0", 512, 1024, 2048, 4), ("b1", 1024, 2048, 4096, 4))


def keras_name(name: str) -> str:
    """The Keras 3 layer name of a resnet38d-tf layer name (``s5/ac`` -> ``s5_ac``)."""
    return name.replace("/", "_")


def original_name(name: str) -> str:
    """The resnet38d-tf layer name of a Keras 3 layer name (``s5_ac`` -> ``s5/ac``)."""
    return name.replace("_", "/")


def build_resnet38d(
    classes: int = 20,
    *,
    width: float = 1.0,
    keras_module: ModuleType | None = None,
    legacy_names: bool = False,
    activation: str = "sigmoid",
    seed: int | None = None,
) -> Any:
    """Build ResNet38-d with random weights.

    ``width`` scales every channel count (1.0 is the real model; tests use small widths with the
    same layer names and layout). ``keras_module`` is Keras 3 by default; pass ``tf_keras`` with
    ``legacy_names=True`` to get the released files' exact layer names. ``seed`` makes the
    random kernels reproducible without touching the global random state.
    """
    if keras_module is None:
        from ._deps import import_keras

        keras_module = import_keras()
    layers = keras_module.layers

    def ch(c: int) -> int:
        return max(1, round(c * width))

    def nm(name: str) -> str:
        return name if legacy_names else keras_name(name)

    counter = iter(range(10_000))

    def init() -> Any:
        if seed is None:
            return "glorot_uniform"
        return keras_module.initializers.GlorotUniform(seed=seed + next(counter))

    def conv(x: Any, name: str, filters: int, k: int, stride: int = 1, dilation: int = 1) -> Any:
        return layers.Conv2D(
            ch(filters),
            k,
            strides=stride,
            dilation_rate=dilation,
            padding="same",
            use_bias=False,
            kernel_initializer=init(),
            name=nm(name),
        )(x)

    def bn(x: Any, name: str) -> Any:
        return layers.BatchNormalization(name=nm(name))(x)

    def relu(x: Any, name: str) -> Any:
        return layers.Activation("relu", name=nm(name))(x)

    inputs = keras_module.Input((None, None, 3), name="images")
    x = conv(inputs, "s0/g0/cv", 64, 3)
    in_ch = 64
    for stage, blocks, mid, out, stride, dilation, first_dilation in _STAGES:
        for g in range(blocks):
            p = f"{stage}/g{g}"
            s = stride if g == 0 else 1
            d1 = first_dilation if g == 0 else dilation
            a = relu(bn(x, f"{p}/b0/bn"), f"{p}/b0/ac")
            r = conv(a, f"{p}/b2/cv", mid, 3, s, d1)
            r = relu(bn(r, f"{p}/b2/bn"), f"{p}/b2/ac")
            shortcut = conv(a, f"{p}/b1/cv", out, 1, s) if (in_ch != out or s != 1) else x
            r = conv(r, f"{p}/b3/cv", out, 3, 1, dilation)
            x = layers.Add(name=nm(f"{p}/add"))([shortcut, r])
            in_ch = out
    for block, mid1, mid2, out, dilation in _BOTTLENECKS:
        p = f"s5/{block}"
        a = relu(bn(x, f"{p}/b0/bn"), f"{p}/b0/ac")
        r = conv(a, f"{p}/b2/cv", mid1, 1)
        r = relu(bn(r, f"{p}/b2/bn"), f"{p}/b2/ac")
        r = conv(r, f"{p}/b3/cv", mid2, 3, 1, dilation)
        r = relu(bn(r, f"{p}/b3/bn"), f"{p}/b3/ac")
        shortcut = conv(a, f"{p}/b1/cv", out, 1)
        r = conv(r, f"{p}/b4/cv", out, 1)
        x = layers.Add(name=nm(f"{p}/add"))([shortcut, r])
    x = relu(bn(x, "s5/bn"), "s5/ac")
    x = layers.Conv2D(classes, 1, use_bias=False, kernel_initializer=init(), name="logits")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Activation(activation, name="predictions")(x)
    return keras_module.Model(inputs, outputs, name="resnet38d")


def _weight_names(model: Any, legacy: bool) -> list[tuple[Any, str]]:
    """(variable, resnet38d-tf weight name) for every weight, in the model's order."""
    out = []
    for layer in model.layers:
        lname = layer.name if legacy else original_name(layer.name)
        for var in layer.weights:
            short = var.name.split("/")[-1].split(":")[0]
            out.append((var, f"{lname}/{short}:0"))
    return out


def weight_names(model: Any, legacy: bool = False) -> list[str]:
    """The resnet38d-tf weight names of ``model`` in order (``s1/g0/b0/bn/gamma:0``, ...)."""
    return [name for _, name in _weight_names(model, legacy)]


def load_resnet38d_weights(model: Any, path: str | Path) -> None:
    """Load a released resnet38d-tf Keras-2 HDF5 weight file into ``model``, by weight name.

    Accepts files written by ``save_weights`` and whole-model ``save`` (``model_weights`` group).
    Raises ModelLoadError naming the first missing, extra or mis-shaped weight.
    """
    from ._deps import import_optional

    h5py = import_optional("h5py", "h5py", "reading .h5 weight files")
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read weights file {path}: not an HDF5 file ({exc})") from exc
    with f:
        root = f.get("model_weights", f)
        if "layer_names" not in root.attrs:
            raise ModelLoadError(
                f"{path} is not a Keras weights file (no 'layer_names' attribute): pass a "
                "resnet38d-tf .h5 file such as resnet38d_voc2012_occse.h5"
            )
        file_weights: dict[str, Any] = {}
        for raw in root.attrs["layer_names"]:
            lname = raw.decode() if isinstance(raw, bytes) else str(raw)
            group = root[lname]
            for wraw in group.attrs.get("weight_names", []):
                wname = wraw.decode() if isinstance(wraw, bytes) else str(wraw)
                file_weights[wname] = group[wname]
        expected = _weight_names(model, legacy=False)
        expected_names = {name for _, name in expected}
        for var, name in expected:
            if name not in file_weights:
                close = difflib.get_close_matches(name, list(file_weights), n=1)
                hint = f" (closest in the file: {close[0]})" if close else ""
                raise ModelLoadError(
                    f"weights file {path} has no weight '{name}'{hint}: it is not a "
                    "resnet38d-tf file for this architecture"
                )
            dataset = file_weights[name]
            if tuple(dataset.shape) != tuple(var.shape):
                fix = ""
                if name.startswith("logits/"):
                    fix = (
                        f": the file has {dataset.shape[-1]} classes, pass --classes with "
                        f"{dataset.shape[-1]} names"
                    )
                raise ModelLoadError(
                    f"weight '{name}' has shape {tuple(dataset.shape)} in {path} but the model "
                    f"expects {tuple(var.shape)}{fix}"
                )
        extra = [n for n in file_weights if n not in expected_names]
        if extra:
            raise ModelLoadError(
                f"weights file {path} has {len(extra)} weight(s) the model does not, first "
                f"'{extra[0]}': it is not a resnet38d-tf file for this architecture"
            )
        for var, name in expected:
            var.assign(np.asarray(file_weights[name], dtype=np.float32))
