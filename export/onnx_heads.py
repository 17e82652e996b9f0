"""Find the classifier head of an ONNX graph by walking back from its output.

From each graph output, backwards: an optional Softmax / LogSoftmax / Sigmoid (the activation;
its input is the logits), then the head's layers on the pooled vector, then the pooling whose
input is the feature map:

- layers: ``Gemm`` (any ``transB``, ``alpha``, ``beta``), ``MatMul`` with a constant weight and
  an optional ``Add`` bias, ``Add``/``Mul`` by constants, ``BatchNormalization``, a 1x1
  ``Conv`` on the pooled map (timm's ``conv_head``), ``Relu``, ``LeakyRelu``, ``Clip(0, 6)``,
  ``HardSigmoid``, ``HardSwish``, ``Sigmoid``, ``Tanh``, ``Gelu``; ``Flatten``, ``Reshape`` and
  ``Squeeze`` of the pooled map; ``Identity``, ``Dropout`` and float ``Cast`` anywhere;
- pooling: ``GlobalAveragePool`` / ``GlobalMaxPool`` (NCHW), ``ReduceMean`` / ``ReduceMax``
  over axes (2, 3) (NCHW, torch and timm) or (1, 2) (NHWC, tf2onnx), an ``AveragePool`` whose
  kernel covers the whole map; or no pooling: a ``Flatten`` of the map itself (VGG-style heads,
  fixed sizes only).

The result is the same :class:`~cam_rt.export.head.HeadSpec` the Keras importer builds, so both
write their scores and maps with one graph writer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cam_rt.runtime.errors import ExportError

from .head import Act, Affine, HeadLayer, HeadSpec, Linear
from .onnx_graph import OnnxGraph

__all__ = ["FoundHead", "find_head", "input_layout"]

Layout = Literal["NCHW", "NHWC"]
_ACTS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hard_swish"}


@dataclass(frozen=True, eq=False)
class FoundHead:
    """A head in the graph: ``features`` (a tensor in ``layout``) -> ``logits`` -> ``output``."""

    output: str  # the graph output the head ends in
    logits: str  # the pre-activation scores tensor (== output when there is no activation)
    features: str
    layout: Layout
    spec: HeadSpec  # on NHWC features (flatten weights reordered for NCHW graphs)
    activation: Literal["sigmoid", "softmax"] | None
    pooling: str  # the pooling node's op type (or "Flatten")
    final_op: str | None = None  # Softmax, LogSoftmax or Sigmoid at the output, if any

    def describe(self) -> str:
        act = self.activation or "no activation"
        return (
            f"features '{self.features}' ({self.layout}, {self.spec.feature_shape[2]} channels) "
            f"-> {self.pooling} + {len(self.spec.layers)} layers -> '{self.logits}' ({act})"
        )


class _NoHead(Exception):
    """Why one output has no head (collected into the error of :func:`find_head`)."""


def find_head(graph: OnnxGraph, feature_node: str | None = None) -> FoundHead:
    """The one classifier head of ``graph`` (or the one whose features are ``feature_node``)."""
    found: list[FoundHead] = []
    reasons: list[str] = []
    for output in graph.proto.graph.output:
        try:
            found.append(_walk(graph, output.name))
        except _NoHead as why:
            reasons.append(f"output '{output.name}': {why}")
    if feature_node is not None:
        feature = _resolve_feature(graph, feature_node, found)
        found = [head for head in found if head.features == feature]
    if not found:
        raise ExportError(
            "no classifier head found (pooling -> Gemm/MatMul -> optional softmax/sigmoid): "
            + "; ".join(reasons)
            + ": pass --feature-node with the feature tensor's name if the head is there"
        )
    if len(found) > 1:
        listed = "; ".join(f"output '{h.output}': {h.describe()}" for h in found)
        raise ExportError(
            f"{len(found)} candidate heads ({listed}): pass --feature-node with the features "
            "of the one to explain"
        )
    return found[0]


def _resolve_feature(graph: OnnxGraph, name: str, found: list[FoundHead]) -> str:
    tensors = graph.tensor_names()
    if name not in tensors:
        by_node = [n for n in graph.nodes() if n.name == name]
        if not by_node:
            candidates = ", ".join(f"'{h.features}'" for h in found) or "none"
            raise ExportError(
                f"--feature-node '{name}' is neither a tensor nor a node of the graph; the "
                f"features of the heads found are: {candidates}"
            )
        name = by_node[0].output[0]
    features = {h.features for h in found}
    if name not in features:
        candidates = ", ".join(f"'{f}'" for f in sorted(features)) or "none"
        raise ExportError(
            f"--feature-node '{name}' is not the input of a pooling head; the features of the "
            f"heads found are: {candidates}"
        )
    return name


def _walk(graph: OnnxGraph, output: str) -> FoundHead:
    tensor, node = graph.source(output)
    activation: Literal["sigmoid", "softmax"] | None = None
    final: str | None = None
    if node is not None and node.op_type in ("Softmax", "LogSoftmax", "Sigmoid"):
        final = node.op_type
        if node.op_type != "Sigmoid":
            axis = graph.attrs(node).get("axis", -1)
            rank = len(graph.shapes.get(tensor, ()) or (0, 0))
            if axis not in (-1, rank - 1):
                raise _NoHead(f"{node.op_type} over axis {axis} is not over the classes")
        activation = "sigmoid" if node.op_type == "Sigmoid" else "softmax"
        tensor, node = graph.source(node.input[0])
    logits = tensor
    layers: list[HeadLayer] = []  # backwards
    features, layout, reduce, pooling = _back_to_pooling(graph, node, layers)
    if reduce == "flatten":  # a flattened map keeps the layout the model's input has
        layout = input_layout(graph)
    found = _finish(graph, output, logits, features, layout, reduce, layers, activation, pooling)
    return dataclasses.replace(found, final_op=final)


def _back_to_pooling(
    graph: OnnxGraph, node: Any, layers: list[HeadLayer]
) -> tuple[str, Layout, str, str]:
    """Walk back from ``node`` adding head layers (last first) until a pooling: (features,
    layout, reduce, the pooling's op). A Flatten of the map itself is a ``flatten`` head when
    the walk past it finds no pooling."""
    while True:
        if node is None:
            raise _NoHead("reached the input without a pooling")
        if len(layers) > 64:
            raise _NoHead("more than 64 layers after the last pooling")
        op = node.op_type
        pooled = _pooling(graph, node)
        if pooled is not None:
            return graph.source(node.input[0])[0], pooled[1], pooled[0], op
        if op in ("Flatten", "Reshape", "Squeeze"):
            flattened, before = graph.source(node.input[0])
            tried: list[HeadLayer] = []
            try:
                found = _back_to_pooling(graph, before, tried)
            except _NoHead:
                return flattened, "NCHW", "flatten", "Flatten"
            layers.extend(tried)
            return found
        layers.extend(_layers_of(graph, node))
        if op == "Add" and isinstance(layers[-1], Linear):
            node = graph.producer.get(_data_input(graph, node))  # the MatMul folded in
        node = graph.source(_data_input(graph, node))[1]


def input_layout(graph: OnnxGraph) -> Layout:
    """NCHW or NHWC, from the one image input's shape (3 channels at axis 1 or 3)."""
    inputs = graph.inputs
    if len(inputs) != 1:
        names = ", ".join(v.name for v in inputs)
        raise ExportError(f"the model has {len(inputs)} inputs ({names}); cam-rt needs one image")
    dims = [
        d.dim_value if d.HasField("dim_value") else None
        for d in inputs[0].type.tensor_type.shape.dim
    ]
    if len(dims) == 4 and dims[1] == 3 and dims[3] != 3:
        return "NCHW"
    if len(dims) == 4 and dims[3] == 3:
        return "NHWC"
    raise ExportError(
        f"input '{inputs[0].name}' has shape {dims}; cam-rt needs (N, 3, H, W) or (N, H, W, 3) "
        "images"
    )


def _data_input(graph: OnnxGraph, node: Any) -> str:
    data = graph.data_inputs(node)
    if len(data) != 1:
        raise _NoHead(
            f"{node.op_type} node '{node.name}' has {len(data)} non-constant inputs; a head layer "
            "has one"
        )
    return data[0]


def _pooling(graph: OnnxGraph, node: Any) -> tuple[str, Layout] | None:
    op = node.op_type
    if op == "GlobalAveragePool":
        return "gap", "NCHW"
    if op == "GlobalMaxPool":
        return "gmp", "NCHW"
    if op in ("ReduceMean", "ReduceMax"):
        axes = graph.attrs(node).get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = graph.constant(node.input[1])
            axes = None if value is None else [int(v) for v in np.ravel(value)]
        rank = len(graph.shapes.get(node.input[0], ()) or ()) or 4
        if axes is None or rank != 4:
            return None
        normal = sorted(a % 4 for a in axes)
        kind = "gap" if op == "ReduceMean" else "gmp"
        if normal == [2, 3]:
            return kind, "NCHW"
        if normal == [1, 2]:
            return kind, "NHWC"
        return None
    if op == "AveragePool":
        shape = graph.shapes.get(node.input[0], ())
        attrs = graph.attrs(node)
        kernel = list(attrs.get("kernel_shape", []))
        if len(shape) == 4 and kernel == list(shape[2:]) and not any(attrs.get("pads", [])):
            return "gap", "NCHW"
    return None


def _layers_of(graph: OnnxGraph, node: Any) -> list[HeadLayer]:
    """The head layer(s) of ``node``, last first; _NoHead for anything else."""
    op, attrs, src = node.op_type, graph.attrs(node), node.name or node.op_type
    const = [graph.constant(name) if name else None for name in node.input]
    if op == "Gemm":
        if attrs.get("transA", 0):
            raise _NoHead(f"Gemm '{src}' with transA=1 is not a classifier layer")
        weight = _const_at(const, 1, node)
        weight = weight.T if attrs.get("transB", 0) else weight
        bias = None
        if len(const) > 2 and const[2] is not None:
            bias = np.broadcast_to(const[2] * attrs.get("beta", 1.0), (weight.shape[1],))
        weight = weight * attrs.get("alpha", 1.0)
        return [Linear(_f32(weight), None if bias is None else _f32(bias), src)]
    if op == "MatMul":
        weight = _const_at(const, 1, node)
        if weight.ndim != 2:
            raise _NoHead(f"MatMul '{src}' has a {weight.ndim}-D weight; a head's is 2-D")
        return [Linear(_f32(weight), None, src)]
    if op in ("Add", "Mul", "Sub", "Div"):
        value = next((c for c in const if c is not None), None)
        if value is None:
            raise _NoHead(f"{op} '{src}' has no constant input")
        value = np.ravel(value).astype(np.float32)
        producer = graph.producer.get(_data_input(graph, node))
        if op == "Add" and producer is not None and producer.op_type == "MatMul":
            (linear,) = _layers_of(graph, producer)
            assert isinstance(linear, Linear)
            bias = np.broadcast_to(value, (linear.weight.shape[1],))
            return [Linear(linear.weight, _f32(bias), linear.source)]
        if op in ("Sub", "Div") and const[1] is None:
            raise _NoHead(f"{op} '{src}' of a constant by the scores is not a head layer")
        one, zero = np.ones_like(value), np.zeros_like(value)
        scale = {"Mul": value, "Div": 1.0 / value}.get(op, one)
        shift = {"Add": value, "Sub": -value}.get(op, zero)
        return [Affine(_f32(scale), _f32(shift), src)]
    if op == "BatchNormalization":
        gamma, beta, mean, var = (_const_at(const, i, node) for i in range(1, 5))
        scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
        return [Affine(_f32(scale), _f32(beta - mean * scale), src)]
    if op == "Conv":
        weight = _const_at(const, 1, node)
        if weight.shape[2:] != (1, 1) or attrs.get("group", 1) != 1:
            raise _NoHead(f"Conv '{src}' after the pooling is not a 1x1 conv")
        bias = const[2] if len(const) > 2 else None
        return [Linear(_f32(weight[:, :, 0, 0].T), None if bias is None else _f32(bias), src)]
    if op in _ACTS:
        return [Act(_ACTS[op], source=src)]
    if op == "LeakyRelu":
        return [Act("leaky_relu", float(attrs.get("alpha", 0.01)), src)]
    if op == "HardSigmoid":
        if not (np.isclose(attrs.get("alpha", 0.2), 1 / 6) and attrs.get("beta", 0.5) == 0.5):
            raise _NoHead(f"HardSigmoid '{src}' is not x/6 + 1/2 (torch's hardsigmoid)")
        return [Act("hard_sigmoid", source=src)]
    if op == "Clip":
        low = const[1] if len(const) > 1 else attrs.get("min")
        high = const[2] if len(const) > 2 else attrs.get("max")
        if low is not None and high is not None and float(low) == 0 and float(high) == 6:
            return [Act("relu6", source=src)]
        raise _NoHead(f"Clip '{src}' is not Clip(0, 6)")
    if op == "Gelu":
        tanh = attrs.get("approximate", b"none") in (b"tanh", "tanh")
        return [Act("gelu_tanh" if tanh else "gelu", source=src)]
    raise _NoHead(f"{op} node '{src}' is not a supported head layer")


def _const_at(const: list[np.ndarray | None], index: int, node: Any) -> np.ndarray:
    if index >= len(const) or const[index] is None:
        raise _NoHead(f"{node.op_type} '{node.name}' input {index} is not a constant")
    return np.asarray(const[index], np.float64)


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _finish(
    graph: OnnxGraph,
    output: str,
    logits: str,
    features: str,
    layout: Layout,
    reduce: str,
    backwards: list[HeadLayer],
    activation: Literal["sigmoid", "softmax"] | None,
    pooling: str,
) -> FoundHead:
    layers = list(reversed(backwards))
    if not any(isinstance(layer, Linear) for layer in layers):
        raise _NoHead(f"no Gemm/MatMul between the {pooling} and the scores")
    shape = graph.shapes.get(features, ())
    if len(shape) != 4:
        if reduce == "flatten":
            raise _NoHead("a Flatten head needs the feature map's shape; none is known")
        shape = (None, None, None, None)
    c_axis = 1 if layout == "NCHW" else 3
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    h_int = h if isinstance(h, int) and h > 0 else None
    w_int = w if isinstance(w, int) and w > 0 else None
    first = next(layer for layer in layers if isinstance(layer, Linear))
    channels = shape[c_axis] if isinstance(shape[c_axis], int) and shape[c_axis] else None
    if reduce == "flatten":
        if h_int is None or w_int is None or channels is None:
            raise _NoHead("a Flatten head needs a fixed-size feature map")
        if not isinstance(layers[0], Linear):
            raise _NoHead("a Flatten head must start with Gemm/MatMul")
        if layout == "NCHW":  # rows in (C, h, w) order -> NHWC's (h, w, C)
            weight = layers[0].weight.reshape(channels, h_int, w_int, -1).transpose(1, 2, 0, 3)
            layers[0] = Linear(
                _f32(weight.reshape(h_int * w_int * channels, -1)), layers[0].bias, first.source
            )
    else:
        channels = channels or int(first.weight.shape[0])
    spec = HeadSpec(reduce, tuple(layers), (h_int, w_int, int(channels)))  # type: ignore[arg-type]
    return FoundHead(output, logits, features, layout, spec, activation, pooling)
