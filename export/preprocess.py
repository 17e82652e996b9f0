"""Input preprocessing modes that the export folds into the graph.

The runtime always feeds RGB float32 in 0..255; the model sees ``(x[..., order] * scale - mean)
/ std``. Constants are Keras' ``imagenet_utils.preprocess_input`` modes.
"""

from __future__ import annotations

from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.metadata import Preprocessing

__all__ = ["PREPROCESSING", "preprocessing_for"]

PREPROCESSING: dict[str, Preprocessing] = {
    # x/255, minus ImageNet mean, divided by ImageNet std, RGB (PyTorch / ResNet38-d).
    "torch": Preprocessing(
        mode="torch",
        scale=1.0 / 255.0,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    ),
    # BGR, minus the ImageNet BGR mean in 0..255, no scaling (Caffe / Keras ResNet50, VGG).
    "caffe": Preprocessing(mode="caffe", mean=(103.939, 116.779, 123.68), channel_order="BGR"),
    # x/127.5 - 1 (Keras MobileNet, Inception, Xception).
    "tf": Preprocessing(mode="tf", scale=1.0 / 127.5, mean=(1.0, 1.0, 1.0)),
    # The model takes 0..255 RGB as it is (it preprocesses inside, or was trained that way).
    "none": Preprocessing(mode="none"),
}


def preprocessing_for(mode: str) -> Preprocessing:
    try:
        return PREPROCESSING[mode.lower()]
    except KeyError:
        raise ConfigError(
            f"preprocess '{mode}' is unknown: use one of {', '.join(PREPROCESSING)}"
        ) from None
