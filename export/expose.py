"""Find what to expose in a Keras classifier: the feature maps, the class scores, the CAM weights.

keras-explainable semantics (``shared/reference/semantics.md`` section 1): the CAM weights W (K, L)
are the kernel of the last layer that has one (a Dense (K, L) or a 1x1 Conv (1, 1, K, L)), without
its bias, and ``cam[n, i, j, l] = sum_k A[n, i, j, k] * W[k, l]``.

Defaults when no layer is named:

- GAP -> Dense head: the features A are the input of the last global pooling layer; the scores
  are the Dense pre-activation ``pool(A) @ W + b``.
- 1x1 Conv -> GAP head (ResNet38-d): the features are the input of the 1x1 conv, the scores are
  the pooling output and the CAM is the conv output itself (minus its bias, if any).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from cam_rt.runtime.errors import ExportError

__all__ = ["Head", "find_layer", "resolve_head"]

_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")
_SCORE_ACTIVATIONS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class Head:
    """How to compute scores and CAMs from a model.

    ``exposed`` is a Keras model on the same layers with outputs
    ``[features (N,h,w,K), score_source, cam_source?]``:
    ``score_source`` is the scores themselves (``score_from == "output"``) or the input of a Dense
    whose pre-activation is the score (``"dense"``: scores = source @ W + b); ``cam_source`` is
    present when ``cam_from == "conv"`` (the 1x1 conv's output is the CAM, plus its bias).
    """

    exposed: Any
    feature_layer: str
    score_layer: str
    kernel_layer: str
    cam_weights: np.ndarray  # (K, L) float32
    bias: np.ndarray | None  # (L,) float32, bias of the kernel layer
    score_from: Literal["output", "dense"]
    cam_from: Literal["conv", "matmul"]
    activation: str | None  # read from the model, None when it cannot be told

    @property
    def num_classes(self) -> int:
        return int(self.cam_weights.shape[1])


def _class_name(layer: Any) -> str:
    return type(layer).__name__


def _activation_name(layer: Any) -> str | None:
    if _class_name(layer) == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", None) if act is not None else None


def find_layer(model: Any, name: str, what: str) -> Any:
    """The top-level layer called ``name`` (``/`` and ``_`` spellings both accepted)."""
    names = [layer.name for layer in model.layers]
    for candidate in (name, name.replace("/", "_")):
        if candidate in names:
            return model.layers[names.index(candidate)]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    hint = f"closest: {', '.join(close)}" if close else f"layers: {', '.join(names[-8:])}"
    raise ExportError(f"{what} '{name}' is not a layer of model '{model.name}' ({hint})")


def _single(tensor_or_list: Any, layer: Any, what: str) -> Any:
    if isinstance(tensor_or_list, (list, tuple)):
        if len(tensor_or_list) != 1:
            raise ExportError(
                f"{what} '{layer.name}' has {len(tensor_or_list)} tensors; expected one"
            )
        return tensor_or_list[0]
    return tensor_or_list


def _rank(tensor: Any) -> int:
    return len(tuple(tensor.shape))


def _kernel_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]


def _check_input(model: Any) -> None:
    inputs = model.inputs
    if inputs is None or len(inputs) == 0:
        raise ExportError(
            f"model '{model.name}' has no defined input (an unbuilt Sequential?): build it with "
            "an Input layer, e.g. keras.Input((None, None, 3))"
        )
    if len(inputs) != 1:
        raise ExportError(
            f"model '{model.name}' has {len(inputs)} inputs; cam-rt exports single-input image "
            "classifiers: expose a one-input sub-model"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise ExportError(
            f"model input has shape {shape}; expected an image batch (batch, height, width, 3)"
        )
    if shape[-1] != 3:
        raise ExportError(
            f"model input has {shape[-1]} channels (shape {shape}); expected 3 (RGB, channels "
            "last): cam-rt feeds RGB images"
        )


def resolve_head(
    model: Any,
    keras_module: ModuleType,
    feature_layer: str | None = None,
    score_layer: str | None = None,
) -> Head:
    """Work out features, scores and CAM weights of ``model`` (see the module docstring)."""
    _check_input(model)
    kernels = _kernel_layers(model)
    if not kernels:
        raise ExportError(f"model '{model.name}' has no layer with a kernel (Dense or Conv)")
    kernel_layer = kernels[-1]
    kernel = np.asarray(kernel_layer.get_weights()[0], dtype=np.float32)
    kind = _class_name(kernel_layer)
    if kernel.ndim == 4:
        if kernel.shape[:2] != (1, 1):
            raise ExportError(
                f"the last layer with a kernel, '{kernel_layer.name}' ({kind}), has a "
                f"{kernel.shape[0]}x{kernel.shape[1]} kernel; CAM weights need a Dense or a "
                "1x1 Conv classifier"
            )
        weights = kernel[0, 0]
    elif kernel.ndim == 2:
        weights = kernel
    else:
        raise ExportError(
            f"layer '{kernel_layer.name}' ({kind}) has a kernel of shape {kernel.shape}; "
            "expected a Dense (K, L) or a 1x1 Conv (1, 1, K, L)"
        )
    bias = None
    if getattr(kernel_layer, "use_bias", False) and getattr(kernel_layer, "bias", None) is not None:
        bias = np.asarray(kernel_layer.get_weights()[1], dtype=np.float32)

    layers = list(model.layers)
    pools = [layer for layer in layers if _class_name(layer) in _POOLING]
    kernel_index = layers.index(kernel_layer)
    conv_head = kernel.ndim == 4 and any(layers.index(p) > kernel_index for p in pools)
    linear_kernel = _activation_name(kernel_layer) in (None, "linear")

    # Features.
    if feature_layer is not None:
        flayer = find_layer(model, feature_layer, "feature layer")
        features = _single(flayer.output, flayer, "feature layer")
        feature_name = flayer.name
    elif conv_head:
        features = _single(kernel_layer.input, kernel_layer, "classifier")
        feature_name = _inbound_name(kernel_layer)
    elif pools:
        pool = pools[-1]
        features = _single(pool.input, pool, "pooling layer")
        feature_name = _inbound_name(pool)
    else:
        raise ExportError(
            f"model '{model.name}' has no global pooling layer, so the feature maps cannot be "
            "found: pass --feature-layer NAME (the layer whose output are the (h, w, K) maps)"
        )
    if _rank(features) != 4:
        raise ExportError(
            f"feature layer '{feature_name}' outputs shape {tuple(features.shape)}; expected "
            "(batch, h, w, K) maps: name a convolutional layer"
        )
    if features.shape[-1] != weights.shape[0]:
        raise ExportError(
            f"feature layer '{feature_name}' has {features.shape[-1]} channels but the CAM "
            f"weights (kernel of '{kernel_layer.name}') expect {weights.shape[0]}: name the "
            "layer that feeds the classifier"
        )

    # Scores.
    score_from: Literal["output", "dense"]
    if score_layer is not None:
        slayer = find_layer(model, score_layer, "score layer")
    elif conv_head:
        slayer = next(p for p in pools if layers.index(p) > kernel_index)
    else:
        slayer = kernel_layer
    if slayer is kernel_layer and kernel.ndim == 2:
        score_src = _single(slayer.input, slayer, "score layer")
        score_from = "dense"
    elif _activation_name(slayer) in _SCORE_ACTIVATIONS or _class_name(slayer) == "Softmax":
        raise ExportError(
            f"score layer '{slayer.name}' applies {_activation_name(slayer)}; cam-rt needs the "
            "scores before the activation: name the layer before it (e.g. the pooling layer)"
        )
    else:
        score_src = _single(slayer.output, slayer, "score layer")
        score_from = "output"
    score_shape = tuple(score_src.shape)
    if score_from == "output" and (len(score_shape) != 2 or score_shape[-1] != weights.shape[1]):
        raise ExportError(
            f"score layer '{slayer.name}' outputs shape {score_shape}; expected (batch, "
            f"{weights.shape[1]}) pooled class scores: name the pooling layer of the classifier"
        )

    # CAM: reuse the 1x1 conv classifier when it reads the features directly.
    outputs = [features, score_src]
    cam_from: Literal["conv", "matmul"] = "matmul"
    if kernel.ndim == 4 and linear_kernel and kernel_layer.input is features:
        outputs.append(_single(kernel_layer.output, kernel_layer, "classifier"))
        cam_from = "conv"

    activation = _read_activation(model, kernel_layer)
    # A single input tensor (not a one-element list), so calling with one array is warning-free.
    exposed = keras_module.Model(model.inputs[0], outputs, name=f"{model.name}_exposed")
    return Head(
        exposed=exposed,
        feature_layer=feature_name,
        score_layer=slayer.name,
        kernel_layer=kernel_layer.name,
        cam_weights=np.ascontiguousarray(weights),
        bias=bias,
        score_from=score_from,
        cam_from=cam_from,
        activation=activation,
    )


def _inbound_name(layer: Any) -> str:
    """The name of the layer whose output feeds ``layer``."""
    tensor = _single(layer.input, layer, "layer")
    history = getattr(tensor, "_keras_history", None)
    if history is not None:
        return str(history[0].name)
    return f"input of {layer.name}"


def _read_activation(model: Any, kernel_layer: Any) -> str | None:
    act = _activation_name(kernel_layer)
    if act in _SCORE_ACTIVATIONS:
        return act
    last = model.layers[-1]
    act = _activation_name(last)
    return act if act in _SCORE_ACTIVATIONS else None
