"""Make Keras layers trace into TensorFlow ops that tf2onnx converts, and check the result.

Some Keras 3 layers trace (TensorFlow backend) into ops tf2onnx cannot convert. tf2onnx does not
fail on them: it logs "Tensorflow op ... is not supported" and leaves the node in the graph with
its TensorFlow type, and ONNX Runtime then refuses the file. :func:`convertible_layers` patches
the layers while tracing, in the style of :func:`cam_rt.export.convert.explicit_dilated_convs`
(an instance attribute shadows a method or attribute and is removed or reset on exit, leaving
the layer exactly as it was); the numerics are unchanged. :func:`check_graph` names what is
left, so the export fails with the Keras layer to blame rather than an ORT load error.

Use both around the conversion::

    with explicit_dilated_convs(body), convertible_layers(body):
        model_proto, _ = tf2onnx.convert.from_function(traced, input_signature=specs, opset=opset)
    check_graph(model_proto, body)
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from cam_rt.runtime.errors import ExportError

from ._deps import import_tensorflow

__all__ = ["check_graph", "convertible_layers"]

#: Node types that are TensorFlow function calls tf2onnx could not inline.
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})

#: Non-default domains ONNX Runtime implements (ONNX-ML, its own contrib ops).
ORT_DOMAINS = frozenset({"ai.onnx.ml", "com.microsoft"})

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_UNSET = object()
_KERAS = ("keras", "tf_keras")


def _operations(model: Any) -> Iterator[Any]:
    """Every layer and op node of ``model``, nested models included, each once."""
    seen: set[int] = set()

    def walk(node: Any) -> Iterator[Any]:
        for child in [*getattr(node, "operations", []), *getattr(node, "layers", [])]:
            if id(child) not in seen:
                seen.add(id(child))
                yield child
                yield from walk(child)

    yield from walk(model)


def _exact_gelu(tf: Any) -> Callable[[Any], Any]:
    """Exact GELU as ``0.5 x (1 + erf(x / sqrt 2))``.

    TensorFlow writes exact GELU with ``Erfc``, which tf2onnx cannot convert; ``Erf`` it can.
    """

    def gelu(x: Any) -> Any:
        x = tf.convert_to_tensor(x)
        half = tf.cast(0.5, x.dtype)
        return half * x * (1.0 + tf.math.erf(x * tf.cast(_SQRT1_2, x.dtype)))

    return gelu


def _explicit_pads(
    kernel_hw: tuple[int, ...], dilation: tuple[int, ...], same: bool, last: bool
) -> list[list[int]]:
    """Symmetric padding of a stride-1 ``same`` conv (what ``same`` pads at stride 1)."""
    ph, pw = ((d * (k - 1)) if same else 0 for k, d in zip(kernel_hw, dilation, strict=True))
    hw = [[ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2]]
    return [[0, 0], *hw, [0, 0]] if last else [[0, 0], [0, 0], *hw]


def _grouped_conv_op(tf: Any, layer: Any) -> Callable[[Any, Any], Any]:
    """A grouped Conv2D's convolution as one plain ``tf.nn.conv2d``.

    Keras runs grouped convolutions (``groups > 1``, e.g. ConvNeXt's 7x7 depthwise convs written
    as ``Conv2D(groups=C)``) in an XLA-compiled ``tf.function``, because TensorFlow's CPU kernel
    lacks them; the trace keeps that as a ``PartitionedCall`` node, which tf2onnx leaves in the
    graph. Traced directly, TensorFlow's Conv2D with fewer kernel than input channels converts
    to one ONNX Conv with ``group`` set (only the trace needs it; ORT runs grouped Convs).
    """
    last = layer.data_format == "channels_last"
    fmt = "NHWC" if last else "NCHW"
    dil = tuple(int(d) for d in layer.dilation_rate)
    strides = [int(s) for s in layer.strides]
    padding: Any = layer.padding.upper()
    if dil != (1, 1) and strides == [1, 1]:  # no SpaceToBatch for the dilation
        padding = _explicit_pads(tuple(layer.kernel_size), dil, layer.padding == "same", last)

    def op(inputs: Any, kernel: Any) -> Any:
        return tf.nn.conv2d(
            inputs, kernel, strides=strides, padding=padding, dilations=list(dil), data_format=fmt
        )

    return op


def _dilated_depthwise_call(tf: Any, layer: Any) -> Callable[[Any], Any]:
    """A dilated stride-1 DepthwiseConv2D's ``call`` as one ``DepthwiseConv2dNative`` op.

    ``tf.nn.depthwise_conv2d`` implements dilation with SpaceToBatch / BatchToSpace around an
    undilated conv (on dynamic H/W, shape arithmetic tf2onnx keeps); the native op with
    ``dilations`` and explicit ``same`` padding converts to one dilated, grouped ONNX Conv.
    """
    last = layer.data_format == "channels_last"
    dil = tuple(int(d) for d in layer.dilation_rate)
    pads = _explicit_pads(tuple(layer.kernel_size), dil, layer.padding == "same", last)

    def call(inputs: Any) -> Any:
        outputs = tf.raw_ops.DepthwiseConv2dNative(
            input=inputs,
            filter=layer.kernel,
            strides=[1, 1, 1, 1],
            padding="EXPLICIT",
            explicit_paddings=[p for pair in pads for p in pair],
            data_format="NHWC" if last else "NCHW",
            dilations=[1, *dil, 1] if last else [1, 1, *dil],
        )
        if layer.use_bias:
            shape = [1, 1, 1, -1] if last else [1, -1, 1, 1]
            outputs = outputs + tf.reshape(layer.bias, shape)
        return layer.activation(outputs) if layer.activation is not None else outputs

    return call


@contextlib.contextmanager
def convertible_layers(model: Any) -> Iterator[list[str]]:
    """While active, the layers of ``model`` trace into ops tf2onnx converts; yields
    ``"<layer name> (<patch>)"`` for each patch applied.

    - ``grouped-conv``: Conv2D with ``groups > 1`` (:func:`_grouped_conv_op`).
    - ``exact-gelu``: any layer whose ``activation`` is exact ``keras.activations.gelu``
      (``Activation("gelu")``, ``Dense(activation="gelu")``) and ``keras.ops.gelu(...,
      approximate=False)`` nodes of a functional graph (:func:`_exact_gelu`). The tanh
      approximation traces into plain Tanh/Pow/Mul and needs nothing.
    - ``dilated-depthwise``: dilated stride-1 DepthwiseConv2D (:func:`_dilated_depthwise_call`).

    Hard-swish (``hard_silu``: Relu6 -> Clip), squeeze-and-excite blocks, LayerNormalization
    and DepthwiseConv2D without dilation convert as they are.
    """
    tf = import_tensorflow()
    gelu = _exact_gelu(tf)
    # Exact GELU of Keras 3 and of tf_keras (Keras 2), whichever is loaded.
    exact = [getattr(sys.modules[m].activations, "gelu", None) for m in _KERAS if m in sys.modules]
    # (object, attribute, saved value or _UNSET when the attribute was the class's)
    undo: list[tuple[Any, str, Any]] = []
    names: list[str] = []

    def shadow(obj: Any, attr: str, value: Any, kind: str) -> None:
        undo.append((obj, attr, obj.__dict__.get(attr, _UNSET)))
        setattr(obj, attr, value)
        names.append(f"{obj.name} ({kind})")

    try:
        for op in _operations(model):
            cls = type(op).__name__
            if cls == "Conv2D" and getattr(op, "groups", 1) != 1:
                shadow(op, "convolution_op", _grouped_conv_op(tf, op), "grouped-conv")
            elif cls == "DepthwiseConv2D" and tuple(op.dilation_rate) != (1, 1):
                if tuple(op.strides) == (1, 1):
                    shadow(op, "call", _dilated_depthwise_call(tf, op), "dilated-depthwise")
            elif cls == "Gelu" and not getattr(op, "approximate", True):
                shadow(op, "call", gelu, "exact-gelu")
            if any(getattr(op, "activation", None) is f for f in exact if f is not None):
                shadow(op, "activation", gelu, "exact-gelu")
        yield names
    finally:
        for obj, attr, saved in reversed(undo):
            if saved is _UNSET:
                delattr(obj, attr)
            else:
                setattr(obj, attr, saved)


def _layer_of(node_name: str, layer_names: set[str]) -> str | None:
    """The innermost Keras layer whose name scope ``node_name`` is in, if known.

    tf2onnx keeps TensorFlow's node names; Keras opens a name scope per layer call, uniquified
    with a ``_<n>`` suffix (``model/stage_0_dwconv_1/PartitionedCall``).
    """
    found = None
    for part in node_name.split("/")[:-1]:
        base = re.sub(r"_\d+$", "", part)
        if not layer_names:
            found = found or base
        elif part in layer_names or base in layer_names:
            found = base if base in layer_names else part
    return found


def _reason(op_type: str, domain: str) -> str:
    if op_type in CALL_OPS:
        return "TensorFlow traced it as a function call (e.g. an XLA-compiled op) tf2onnx keeps"
    if domain not in ("", "ai.onnx"):
        return f"it became an op of the '{domain}' domain, which ONNX Runtime does not implement"
    return "tf2onnx has no converter for this TensorFlow op and left it in the graph"


def check_graph(model_proto: Any, model: Any = None) -> None:
    """Raise ExportError when ``model_proto`` holds ops ONNX Runtime cannot run.

    Those are TensorFlow call nodes (``PartitionedCall``), unconverted TensorFlow ops (left by
    tf2onnx under their TensorFlow type in the default domain, e.g. ``Erfc``) and ops of domains
    ORT lacks. The one-line message names each op type and, from the node's name scope, the
    Keras layer it came from (exact names when ``model``, the traced Keras model, is given).
    """
    import onnx

    opsets = {o.domain or "": o.version for o in model_proto.opset_import}
    default = opsets.get("", opsets.get("ai.onnx", onnx.defs.onnx_opset_version()))
    layer_names = {op.name for op in _operations(model)} if model is not None else set()
    bad: dict[tuple[str | None, str, str], int] = {}
    for node in model_proto.graph.node:
        domain = node.domain or ""
        if domain in ORT_DOMAINS:
            continue
        if domain in ("", "ai.onnx") and node.op_type not in CALL_OPS:
            try:
                onnx.defs.get_schema(node.op_type, default, "")
                continue
            except onnx.defs.SchemaError:
                pass
        key = (_layer_of(node.name, layer_names), node.op_type, domain)
        bad[key] = bad.get(key, 0) + 1
    if not bad:
        return
    parts = []
    for (layer, op_type, _), count in bad.items():
        where = f"layer '{layer}'" if layer else "a node"
        times = f", {count} nodes" if count > 1 else ""
        parts.append(f"{where} ({op_type}{times})")
    shown = "; ".join(parts[:3]) + (f"; and {len(parts) - 3} more" if len(parts) > 3 else "")
    reasons = dict.fromkeys(_reason(op_type, domain) for _, op_type, domain in bad)
    types = sorted({op_type for _, op_type, _ in bad})
    raise ExportError(
        f"{shown} could not be converted to ONNX: {'; '.join(reasons)} "
        f"(op types: {', '.join(types)}); please report the model's layers"
    )
