"""Find the head of a Keras classifier: the feature maps A, the score layer, the head's layers.

The search runs on the replayed, flat graph (:mod:`cam_rt.export.keras_graph`), so layers of
nested models are found at any depth. From the score end (the model's output, or
``--score-layer``) it walks back through head layers to the spatial reduction:

- the final sigmoid/softmax (an Activation or Softmax layer, or a Dense/Conv's own activation)
  is left out and recorded as the activation: scores are pre-activation;
- head layers: Dense, 1x1 Conv2D on the pooled map, BatchNormalization, LayerNormalization,
  Dropout (and other inference no-ops), Flatten/Reshape between (N, 1, 1, C) and (N, C), and
  the activations of :data:`cam_rt.export.head.ACTIVATIONS` (Activation, ReLU, LeakyReLU,
  Softmax layers);
- the reduction: GlobalAveragePooling2D, GlobalMaxPooling2D, an Average/MaxPooling2D whose
  window covers the whole map, or a Flatten of the (h, w, K) maps;
- the features are the reduction's input, except that 1x1 convs without activation right before
  a global average pooling (ResNet38-d's classifier: conv -> GAP) commute with it and join the
  head, so the features are that conv's input (keras-explainable's choice).

``--feature-layer`` names the features instead; only linear layers (1x1 conv, BatchNorm,
Dropout) may then sit between it and the reduction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cam_rt.runtime.errors import ExportError

from .head import ACTIVATIONS, Act, Affine, HeadLayer, HeadSpec, Linear, Norm, activation_numpy
from .keras_graph import FlatGraph, FlatOp

__all__ = ["Exposed", "expose"]

_NO_OPS = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "GaussianDropout",
        "GaussianNoise",
        "AlphaDropout",
        "ActivityRegularization",
        "Identity",
    }
)
_SCORE_ACTIVATIONS = ("sigmoid", "softmax")
_NAME_ALIASES = {"silu": "swish", "relu6": "relu6", "hard_silu": "hard_swish"}


@dataclass(frozen=True, eq=False)
class Exposed:
    """What to export: the features tensor, the score tensor and the head between them.

    ``check`` is the Keras tensor the parity check compares with: the scores themselves
    (``check_is_probability`` False) or the model's post-activation output.
    """

    features: Any
    check: Any
    check_is_probability: bool
    head: HeadSpec
    feature_layer: str
    score_layer: str
    activation: str | None


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in tuple(tensor.shape))


def _weights(layer: Any) -> list[np.ndarray]:
    return [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]


def _activation_of(op: FlatOp) -> tuple[str, float] | None:
    """The activation an op applies as (name, alpha); None: it applies none (linear)."""
    layer, kind = op.layer, op.kind
    if kind == "Softmax":
        return "softmax", 0.0
    if kind == "ReLU":
        slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
        maximum = getattr(layer, "max_value", None)
        threshold = float(getattr(layer, "threshold", 0.0) or 0.0)
        if threshold != 0.0 or (slope and maximum is not None):
            raise _unsupported(op, "a ReLU with a threshold or a capped leaky ReLU")
        if maximum is not None:
            if float(maximum) != 6.0:
                raise _unsupported(op, f"a ReLU capped at {float(maximum):g} (6 is supported)")
            return "relu6", 0.0
        return ("leaky_relu", slope) if slope else ("relu", 0.0)
    if kind == "LeakyReLU":
        slope = getattr(layer, "negative_slope", None)
        return "leaky_relu", float(slope if slope is not None else layer.alpha)
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    name = getattr(fn, "__name__", type(fn).__name__)
    if name == "linear":
        return None
    return _NAME_ALIASES.get(name, name), 0.0


def _check_activation(op: FlatOp, name: str, alpha: float) -> str:
    """Confirm on sample values that the Keras function is cam-rt's definition of ``name``."""
    fn = getattr(op.layer, "activation", None)
    candidates = ("gelu", "gelu_tanh") if name == "gelu" else (name,)
    if name not in ACTIVATIONS:
        raise _unsupported(op, f"the activation '{name}'")
    if fn is None or op.kind in ("ReLU", "LeakyReLU", "Softmax"):
        return name
    z = np.linspace(-8, 8, 161, dtype=np.float32).reshape(1, -1)
    got = np.asarray(fn(z), dtype=np.float64)
    for candidate in candidates:
        if np.allclose(got, activation_numpy(candidate, z.astype(np.float64), alpha), atol=1e-5):
            return candidate
    raise _unsupported(op, f"the activation '{name}' (it differs from the standard definition)")


def _unsupported(op: FlatOp, what: str) -> ExportError:
    return ExportError(
        f"head layer '{op.path}' ({op.kind}) applies {what}, which cam-rt cannot differentiate "
        "in the graph: supported head layers are Dense, 1x1 Conv2D, BatchNormalization, "
        "LayerNormalization, Dropout, Flatten/Reshape, global pooling and the activations "
        f"{', '.join(ACTIVATIONS)}; or name the scores with --score-layer"
    )


def _single_input(op: FlatOp) -> Any:
    tensors = [t for t in op.inputs if hasattr(t, "shape")]
    if len(tensors) != 1:
        raise ExportError(
            f"head layer '{op.path}' ({op.kind}) takes {len(tensors)} tensors; the layers between "
            "the global pooling and the scores must form a chain: name the scores with "
            "--score-layer or the maps with --feature-layer"
        )
    return tensors[0]


def _reduction(op: FlatOp) -> str | None:
    """gap, gmp or flatten when ``op`` reduces (N, h, w, K) maps to a vector, else None."""
    kind = op.kind
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        if getattr(op.layer, "data_format", "channels_last") != "channels_last":
            raise ExportError(f"pooling '{op.path}' is channels_first; cam-rt needs NHWC maps")
        return "gap" if kind == "GlobalAveragePooling2D" else "gmp"
    shape_in = _shape(op.inputs[0]) if op.inputs else ()
    if len(shape_in) != 4:
        return None
    if kind in ("AveragePooling2D", "MaxPooling2D"):
        window = tuple(op.layer.pool_size)
        if shape_in[1:3] == window and op.layer.padding == "valid":
            return "gap" if kind == "AveragePooling2D" else "gmp"
        return None
    if kind in ("Flatten", "Reshape") and shape_in[1:3] != (1, 1):
        if kind == "Reshape" and len(tuple(op.layer.target_shape)) != 1:
            return None
        return "flatten"
    return None


def _layer_of(op: FlatOp) -> list[HeadLayer]:
    """The head layers of one op (after the reduction), or raise naming it."""
    kind, layer = op.kind, op.layer
    out: list[HeadLayer] = []
    if kind in _NO_OPS:
        return out
    shape_in = _shape(_single_input(op))
    if kind in ("Flatten", "Reshape"):
        shape_out = _shape(op.outputs[0])
        if all(d == 1 for d in shape_in[1:-1]) and all(d == 1 for d in shape_out[1:-1]):
            return out  # (N, 1, 1, C) <-> (N, C)
        raise _unsupported(op, f"a reshape {shape_in} -> {shape_out}")
    if kind == "Dense" or kind == "Conv2D":
        weights = _weights(layer)
        kernel = weights[0]
        if kernel.ndim == 4:
            if kernel.shape[:2] != (1, 1) or tuple(layer.strides) != (1, 1):
                raise _unsupported(op, f"a {kernel.shape[0]}x{kernel.shape[1]} convolution")
            if getattr(layer, "groups", 1) != 1:
                raise _unsupported(op, "a grouped convolution")
            kernel = kernel[0, 0]
        bias = weights[1] if getattr(layer, "use_bias", False) and len(weights) > 1 else None
        out.append(Linear(kernel, bias, op.path))
    elif kind == "BatchNormalization":
        axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)[-1]
        if axis not in (-1, len(shape_in) - 1):
            raise _unsupported(op, f"a BatchNormalization over axis {layer.axis}")
        gamma = np.asarray(layer.gamma, np.float32) if layer.scale else 1.0
        beta = np.asarray(layer.beta, np.float32) if layer.center else 0.0
        mean = np.asarray(layer.moving_mean, np.float32)
        var = np.asarray(layer.moving_variance, np.float32)
        scale = np.broadcast_to(gamma / np.sqrt(var + layer.epsilon), mean.shape)
        out.append(Affine(scale.astype(np.float32), (beta - mean * scale).astype(np.float32)))
    elif kind == "LayerNormalization":
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if list(axes) not in ([-1], [len(shape_in) - 1]) or getattr(layer, "rms_scaling", False):
            raise _unsupported(op, f"a LayerNormalization over axes {list(axes)}")
        dim = int(shape_in[-1] or 0)
        gamma = np.asarray(layer.gamma, np.float32) if layer.scale else np.ones(dim, np.float32)
        beta = np.asarray(layer.beta, np.float32) if layer.center else np.zeros(dim, np.float32)
        out.append(Norm(gamma, beta, float(layer.epsilon), op.path))
    elif kind not in ("Activation", "ReLU", "LeakyReLU", "Softmax"):
        raise _unsupported(op, "an operation")
    act = _activation_of(op)
    if act is not None:
        name = _check_activation(op, *act)
        out.append(Act(name, act[1], op.path))
    return out


def expose(
    graph: FlatGraph,
    feature_layer: str | None = None,
    score_layer: str | None = None,
) -> Exposed:
    """Find features, scores and the head in ``graph`` (see the module docstring)."""
    top = graph.output if score_layer is None else graph.find(score_layer, "score layer").outputs[0]
    activation: str | None = None
    check_is_probability = strip_fused = False
    chain: list[FlatOp] = []  # from the scores down to the reduction
    tensor = top
    while True:
        op = graph.producer(tensor)
        if op is None:
            raise ExportError(
                "found no global pooling (or Flatten) between the input and the scores, so the "
                "feature maps cannot be found: pass --feature-layer NAME (the layer whose output "
                "are the (h, w, K) maps) and --score-layer NAME"
            )
        reduce = _reduction(op)
        if reduce is not None:
            reduce_op = op
            break
        act = _activation_of(op) if not chain and activation is None else None
        if act is not None and act[0] in _SCORE_ACTIVATIONS:
            if score_layer is not None:
                raise ExportError(
                    f"score layer '{op.path}' applies {act[0]}; cam-rt needs the scores before "
                    "the activation: name the layer before it (e.g. the pooling layer)"
                )
            activation, check_is_probability = act[0], True
            if op.kind not in ("Activation", "Softmax"):
                chain.append(op)  # a Dense/Conv with its own sigmoid/softmax
                strip_fused = True
        else:
            chain.append(op)
        tensor = _single_input(op)

    layers: list[HeadLayer] = []
    for op in reversed(chain):
        parts = _layer_of(op)
        if strip_fused and op is chain[0]:
            parts = parts[:-1]  # the fused final activation is the recorded activation
        layers.extend(parts)

    features = _single_input(reduce_op)
    pre: list[HeadLayer] = []
    target = None if feature_layer is None else graph.find(feature_layer, "feature layer")
    while True:
        op = graph.producer(features)
        if op is None or op is target:
            break
        absorbable = reduce == "gap" and (
            op.kind in _NO_OPS
            or (
                op.kind == "Conv2D"
                and _is_1x1(op)
                and _activation_of(op) is None
                and tuple(op.layer.strides) == (1, 1)
                and getattr(op.layer, "groups", 1) == 1
            )
        )
        if not absorbable:
            if target is None:
                break
            raise ExportError(
                f"layer '{op.path}' ({op.kind}) sits between the feature layer "
                f"'{target.path}' and the pooling '{reduce_op.path}'; only 1x1 convs without "
                "activation and dropout may (the head after the pooling can be anything "
                "supported): name a layer closer to the pooling, or leave --feature-layer out"
            )
        pre[:0] = _layer_of(op)
        features = _single_input(op)
    if target is not None and graph.producer(features) is not target:
        raise ExportError(
            f"feature layer '{target.path}' does not feed the pooling '{reduce_op.path}': name "
            "a layer on the path to the classifier"
        )
    shape = _shape(features)
    if len(shape) != 4 or shape[-1] is None:
        raise ExportError(
            f"the features (input of '{reduce_op.path}') have shape {shape}; expected (batch, "
            "h, w, K) maps: name a convolutional layer with --feature-layer"
        )
    spec = HeadSpec(reduce, tuple(pre + layers), (shape[1], shape[2], int(shape[3])))  # type: ignore[arg-type]
    _check_dims(spec)
    if activation is None and score_layer is not None:
        activation = _activation_after(graph, top)
    producer = graph.producer(features)
    score_op = chain[0] if chain else reduce_op
    return Exposed(
        features=features,
        check=top,
        check_is_probability=check_is_probability,
        head=spec,
        feature_layer=producer.path if producer is not None else "images",
        score_layer=score_op.path if score_layer is None else graph.find(score_layer, "").path,
        activation=activation,
    )


def _is_1x1(op: FlatOp) -> bool:
    kernel = getattr(op.layer, "kernel", None)
    return kernel is not None and tuple(kernel.shape)[:2] == (1, 1)


def _check_dims(spec: HeadSpec) -> None:
    h, w, k = spec.feature_shape
    dim = k * (h or 0) * (w or 0) if spec.reduce == "flatten" else k
    if spec.reduce == "flatten" and not dim:
        raise ExportError("a Flatten head needs a fixed input size (the model has none)")
    for layer in spec.layers:
        if isinstance(layer, Linear):
            if layer.weight.shape[0] != dim:
                raise ExportError(
                    f"head layer '{layer.source}' expects {layer.weight.shape[0]} inputs but gets "
                    f"{dim}: name the feature layer with --feature-layer"
                )
            dim = int(layer.weight.shape[1])


def _activation_after(graph: FlatGraph, tensor: Any) -> str | None:
    """The sigmoid/softmax applied right after ``tensor`` (for an explicit --score-layer)."""
    for op in graph.ops:
        if any(t is tensor for t in op.inputs):
            act = _activation_of(op)
            if act is not None and act[0] in _SCORE_ACTIVATIONS:
                return act[0]
    return None
