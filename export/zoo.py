"""The keras.applications classifiers cam-rt is tested and benchmarked with (no weights).

Each is built as a user builds it for training: ``include_top=True``, its default input size,
``weights=None`` (nothing is downloaded), 20 sigmoid classes. ``reduced=True`` gives the
smaller variant the default test suite uses where the constructor allows it (width
``alpha``, a smaller fixed input size); the others are built as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._deps import import_keras

__all__ = ["ZOO", "ZooModel", "build"]


@dataclass(frozen=True)
class ZooModel:
    name: str
    preprocess: str  # the preprocess_input mode of keras.applications for it
    reduced: dict[str, Any]  # constructor arguments of the reduced variant


ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel("MobileNetV2", "tf", {"alpha": 0.35, "input_shape": (96, 96, 3)}),
        ZooModel("ResNet50", "caffe", {"input_shape": (64, 64, 3)}),
        ZooModel("EfficientNetB0", "none", {"input_shape": (64, 64, 3)}),
        ZooModel("DenseNet121", "torch", {"input_shape": (64, 64, 3)}),
        ZooModel("ConvNeXtTiny", "none", {"input_shape": (64, 64, 3)}),
        ZooModel("Xception", "tf", {"input_shape": (71, 71, 3)}),
        ZooModel("MobileNetV3Small", "none", {"alpha": 0.75, "minimalistic": False}),
        ZooModel("InceptionV3", "tf", {"input_shape": (75, 75, 3)}),
        ZooModel("NASNetMobile", "tf", {"input_shape": (64, 64, 3)}),
        ZooModel("VGG16", "caffe", {"input_shape": (64, 64, 3)}),
    )
}


def build(
    name: str, reduced: bool = False, classes: int = 20, seed: int = 0, calibrate: bool = True
) -> Any:
    """The Keras 3 model ``name`` of :data:`ZOO` with random (seeded) weights.

    ``calibrate``: set every BatchNormalization's moving statistics to those of one batch of
    random images (momentum 0 for one training-mode call), so activations keep their scale
    through the depth. Freshly initialised statistics (mean 0, variance 1) shrink them to
    ~1e-9 at the scores, which would make any parity figure meaningless.
    """
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    entry = ZOO[name]
    constructor: Callable[..., Any] = getattr(keras.applications, name)
    kwargs = dict(entry.reduced) if reduced else {}
    model = constructor(
        weights=None,
        include_top=True,
        classes=classes,
        classifier_activation="sigmoid",
        **kwargs,
    )
    if calibrate:
        _calibrate(model, keras, seed, entry.preprocess)
    return model


def _calibrate(model: Any, keras: Any, seed: int, preprocess: str) -> None:
    import numpy as np

    from .preprocess import preprocessing_for

    layers = [
        layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not layers:
        return
    shape = tuple(model.inputs[0].shape[1:3])
    size = tuple(224 if d is None else int(d) for d in shape)
    x = np.random.default_rng(seed).uniform(0, 255, (4, *size, 3)).astype("float32")
    x = preprocessing_for(preprocess).apply(x)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        out.extend(_all_layers(layer))
    return out
