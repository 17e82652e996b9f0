"""Trace a Keras body (images -> feature maps) into ONNX, bind its weights, append the head.

Keras 3 models are traced **stateless**: a ``tf.function`` takes the weights as inputs
(``model.stateless_call``), so tf2onnx never sees the 400 MB of ResNet38-d constants (a frozen
export of it peaked at 20 GB RSS here). The weights are then bound as initializers and ONNX
Runtime's basic-level optimizer (constant folding, Conv+BatchNorm/Mul/Add fusion; all standard
ONNX ops, valid for every execution provider) folds the kernel transposes and BatchNorm
arithmetic the trace left on them. tf_keras (Keras 2) models have no stateless call and are
traced with their variables frozen, which is fine for the small legacy models users bring.

Dilated convolutions: TensorFlow lowers a dilated ``same`` conv on dynamic H/W to SpaceToBatch /
BatchToSpace chains. While tracing, each dilated Conv2D uses ``tf.nn.conv2d`` with explicit
symmetric padding ``d * (k - 1) / 2`` instead (identical to ``same`` at stride 1), which
converts to one plain dilated ONNX Conv. Other layers that would not convert (grouped convs,
exact Gelu) are patched while tracing by :mod:`cam_rt.export.patches`, and any op tf2onnx still
leaves unconverted is an error naming its layer, never an invalid file.

The head (scores and maps) is not traced: :mod:`cam_rt.export.onnx_head` writes it from the
:class:`~cam_rt.export.head.HeadSpec` onto the traced feature maps.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cam_rt.runtime.errors import ExportError
from cam_rt.runtime.metadata import INPUT_NAME, SCORES_NAME, Preprocessing

from ._deps import import_optional, import_tensorflow
from .head import HeadSpec
from .onnx_head import append_head
from .patches import check_graph, convertible_layers

__all__ = ["FEATURES", "FORBIDDEN_OPS", "convert_body"]

#: The traced body's output: the feature maps A (N, h, w, K).
FEATURES = "features"

#: Op types an exported graph must not contain (dilated-conv lowering, shape arithmetic).
FORBIDDEN_OPS = frozenset({"SpaceToDepth", "DepthToSpace", "BatchToSpace", "SpaceToBatch"})


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)


@contextlib.contextmanager
def explicit_dilated_convs(model: Any) -> Iterator[int]:
    """While active, dilated stride-1 Conv2D layers of ``model`` use explicit-padding convs."""
    tf = import_tensorflow()
    patched = []
    for layer in _all_layers(model):
        if type(layer).__name__ != "Conv2D" or not hasattr(layer, "convolution_op"):
            continue
        dil = tuple(layer.dilation_rate)
        if dil == (1, 1) or getattr(layer, "groups", 1) != 1:
            continue
        channels_last = layer.data_format == "channels_last"
        same = layer.padding == "same"

        def op(
            inputs: Any,
            kernel: Any,
            _d: tuple[int, ...] = dil,
            _same: bool = same,
            _last: bool = channels_last,
        ) -> Any:
            kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
            ph, pw = (_d[0] * (kh - 1), _d[1] * (kw - 1)) if _same else (0, 0)
            hw = [[ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2]]
            pads = [[0, 0], *hw, [0, 0]] if _last else [[0, 0], [0, 0], *hw]
            return tf.nn.conv2d(
                inputs,
                kernel,
                strides=1,
                padding=pads,
                dilations=list(_d),
                data_format="NHWC" if _last else "NCHW",
            )

        layer.convolution_op = op
        patched.append(layer)
    try:
        yield len(patched)
    finally:
        for layer in patched:
            del layer.convolution_op


def _preprocess(tf: Any, images: Any, pre: Preprocessing) -> Any:
    x = tf.reverse(images, axis=[-1]) if pre.channel_order == "BGR" else images
    mean, std = pre.mean, pre.std  # in the model's channel order
    if pre.scale != 1.0:
        x = x * tf.constant(pre.scale, tf.float32)
    if any(mean):
        x = x - tf.constant(mean, tf.float32)
    if any(s != 1.0 for s in std):
        x = x / tf.constant(std, tf.float32)
    return x


def convert_body(
    body: Any,
    spec: HeadSpec,
    flavour: str,
    preprocessing: Preprocessing,
    output_kind: str,
    opset: int,
    input_size: tuple[int, int] | None = None,
) -> Any:
    """Trace ``body`` (a Keras model: images -> [features]), convert, bind weights, append the
    head (:func:`cam_rt.export.onnx_head.append_head`) and optimize; returns the ModelProto.

    ``input_size`` (H, W) makes the input static (a fixed-size export); None keeps H, W dynamic.
    """
    tf = import_tensorflow()
    tf2onnx = import_optional("tf2onnx", "tf2onnx", "converting to ONNX")
    onnx = import_optional("onnx", "onnx", "writing ONNX files")
    height, width = input_size if input_size is not None else (None, None)
    image_spec = tf.TensorSpec((None, height, width, 3), tf.float32, name=INPUT_NAME)

    if flavour == "keras":
        trainable = list(body.trainable_variables)
        non_trainable = list(body.non_trainable_variables)
        variables = trainable + non_trainable
        names = [f"cam_rt_w{i}" for i in range(len(variables))]
        pairs = list(zip(variables, names, strict=True))
        specs = [image_spec] + [tf.TensorSpec(tuple(v.shape), v.dtype, name=n) for v, n in pairs]
        n_train = len(trainable)

        def fn(images: Any, *weights: Any) -> dict[str, Any]:
            x = _preprocess(tf, images, preprocessing)
            outs, _ = body.stateless_call(
                list(weights[:n_train]), list(weights[n_train:]), x, training=False
            )
            return {FEATURES: tf.identity(_first(outs), name=FEATURES)}

    else:
        specs = [image_spec]
        pairs = []

        def fn(images: Any) -> dict[str, Any]:  # type: ignore[misc]
            x = _preprocess(tf, images, preprocessing)
            return {FEATURES: tf.identity(_first(body(x, training=False)), name=FEATURES)}

    traced = tf.function(fn, input_signature=specs, autograph=False)
    with explicit_dilated_convs(body), convertible_layers(body):
        try:
            model_proto, _ = tf2onnx.convert.from_function(
                traced, input_signature=specs, opset=opset
            )
            captured = _captured_constants(tf, traced, specs)  # the same (cached) trace
        except ExportError:
            raise
        except Exception as exc:  # tf2onnx raises bare exceptions of many kinds
            raise ExportError(f"tf2onnx could not convert the model: {_first_line(exc)}") from exc
    del traced

    # Bind the weights (stateless trace) and captured constant tensors (e.g. the mean and
    # variance a Keras 3 Normalization layer keeps as plain tensors, which tf2onnx leaves as
    # graph inputs) as initializers.
    graph_inputs = {i.name for i in model_proto.graph.input}
    values = {n: np.asarray(v.numpy()) for v, n in pairs if n in graph_inputs}
    values.update((n, v) for n, v in captured.items() if n in graph_inputs)
    if values:
        keep = [i for i in model_proto.graph.input if i.name not in values]
        del model_proto.graph.input[:]
        model_proto.graph.input.extend(keep)
        for name, value in values.items():
            model_proto.graph.initializer.append(onnx.numpy_helper.from_array(value, name))
        values.clear()

    check_graph(model_proto, body)  # ops tf2onnx left unconverted, named by layer
    (features,) = [o.name for o in model_proto.graph.output]
    append_head(model_proto, features, spec, output_kind, opset)
    _name_dims(model_proto, output_kind)
    model_proto = _ort_optimize(model_proto)
    _name_dims(model_proto, output_kind)
    bad = sorted({n.op_type for n in model_proto.graph.node} & FORBIDDEN_OPS)
    if bad:
        raise ExportError(
            f"the exported graph contains {', '.join(bad)} (a dilated convolution cam-rt could "
            "not rewrite, e.g. a dilated DepthwiseConv2D): please report the model's layers"
        )
    return model_proto


def _captured_constants(tf: Any, traced: Any, specs: list[Any]) -> dict[str, np.ndarray]:
    """Values of the non-variable tensors the traced function captures, by placeholder name."""
    concrete = traced.get_concrete_function(*specs)
    captured = list(concrete.captured_inputs)
    if not captured:
        return {}
    placeholders = list(concrete.inputs)[-len(captured) :]
    return {
        p.name: np.asarray(c.numpy())
        for p, c in zip(placeholders, captured, strict=True)
        if c.dtype != tf.dtypes.resource
    }


def _first(outs: Any) -> Any:
    return outs[0] if isinstance(outs, (list, tuple)) else outs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _name_dims(model_proto: Any, output_kind: str) -> None:
    """Name the dynamic dims: images (batch, height, width, 3), outputs (batch, map_h, map_w, .)."""

    def set_dims(value_info: Any, names: dict[int, str]) -> None:
        dims = value_info.type.tensor_type.shape.dim
        for index, name in names.items():
            if index < len(dims) and not dims[index].HasField("dim_value"):
                dims[index].dim_param = name

    for vi in model_proto.graph.input:
        if vi.name == INPUT_NAME:
            set_dims(vi, {0: "batch", 1: "height", 2: "width"})
    for vi in model_proto.graph.output:
        names = (
            {0: "batch"}
            if vi.name == SCORES_NAME
            else {0: "batch", 1: "map_height", 2: "map_width"}
        )
        set_dims(vi, names)
    del model_proto.graph.value_info[:]


def _ort_optimize(model_proto: Any) -> Any:
    """Constant folding and Conv fusions by ONNX Runtime's basic (portable) optimizer."""
    ort = import_optional("onnxruntime", "onnxruntime", "optimizing the ONNX graph", extra="cpu")
    onnx = import_optional("onnx", "onnx", "writing ONNX files")
    with tempfile.TemporaryDirectory(prefix="cam-rt-export-") as tmp:
        raw, opt = Path(tmp) / "raw.onnx", Path(tmp) / "opt.onnx"
        onnx.save(model_proto, str(raw))
        del model_proto
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(opt)
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ExportError(f"ONNX Runtime cannot load the converted graph: {exc}") from exc
        del session
        return onnx.load(str(opt))
