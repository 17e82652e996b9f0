"""convertible_layers / check_graph on tiny Keras 3 models, traced the way convert.py traces."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cam_rt.export.patches import check_graph, convertible_layers
from cam_rt.runtime.errors import ExportError

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")


def _keras() -> Any:
    import keras

    return keras


def _convert(model: Any, patch: bool, hw: tuple[int | None, int | None] = (None, None)) -> Any:
    """Stateless trace (weights as inputs) -> tf2onnx -> weights bound as initializers."""
    import tensorflow as tf
    import tf2onnx

    variables = [*model.trainable_variables, *model.non_trainable_variables]
    n_train = len(model.trainable_variables)
    names = [f"w{i}" for i in range(len(variables))]
    specs = [tf.TensorSpec((None, *hw, 3), tf.float32, name="images")] + [
        tf.TensorSpec(tuple(v.shape), v.dtype, name=n)
        for v, n in zip(variables, names, strict=True)
    ]

    def fn(images: Any, *w: Any) -> dict[str, Any]:
        outs, _ = model.stateless_call(list(w[:n_train]), list(w[n_train:]), images, training=False)
        return {"out": tf.identity(outs, name="out")}

    traced = tf.function(fn, input_signature=specs, autograph=False)
    with convertible_layers(model) if patch else contextlib.nullcontext():
        proto, _ = tf2onnx.convert.from_function(traced, input_signature=specs, opset=17)
    inputs = {i.name for i in proto.graph.input}
    keep = [i for i in proto.graph.input if i.name not in names]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    for v, n in zip(variables, names, strict=True):
        if n in inputs:
            proto.graph.initializer.append(onnx.numpy_helper.from_array(v.numpy(), n))
    return proto


def _run(proto: Any, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(proto.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, {"images": x})[0]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (b.max() - b.min()))


def _ops(proto: Any) -> set[str]:
    return {n.op_type for n in proto.graph.node}


def _model(body: Callable[[Any, Any], Any], seed: int = 3) -> Any:
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    return keras.Model(inp, body(keras, x))


def _gelu_exact(keras: Any, x: Any) -> Any:
    x = keras.layers.Activation("gelu", name="act_gelu")(x)
    x = keras.layers.Dense(6, activation="gelu", name="dense_gelu")(x)
    return keras.ops.gelu(x, approximate=False)


def _gelu_tanh(keras: Any, x: Any) -> Any:
    x = keras.layers.Activation(lambda t: keras.activations.gelu(t, True), name="act_tanh")(x)
    return keras.ops.gelu(x, approximate=True)


def _grouped(keras: Any, x: Any) -> Any:
    x = keras.layers.Conv2D(8, 7, padding="same", groups=8, name="dw_as_conv")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", groups=4, name="g4_s2")(x)
    return keras.layers.Conv2D(8, 3, padding="same", groups=2, dilation_rate=2, name="g2_d2")(x)


def _layernorm(keras: Any, x: Any) -> Any:
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="ln")(x)
    return keras.layers.Dense(5, name="pointwise")(x)


def _depthwise(keras: Any, x: Any) -> Any:
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw_s2")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="dw_d2")(x)
    return keras.layers.DepthwiseConv2D(3, padding="valid", depth_multiplier=2, name="dw_m2")(x)


def _hard_swish_se(keras: Any, x: Any) -> Any:
    x = keras.layers.Activation("hard_silu", name="hswish")(x)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = keras.layers.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = keras.layers.Conv2D(8, 1, name="se_expand")(s)
    s = keras.layers.ReLU(6.0, name="se_relu6")(s + 3.0) * (1.0 / 6.0)  # raw Add/Multiply ops
    x = keras.layers.Multiply(name="se_mul")([x, s])
    s2 = keras.layers.GlobalAveragePooling2D(name="se2_pool")(x)
    s2 = keras.layers.Reshape((1, 1, 8), name="se2_reshape")(s2)
    s2 = keras.layers.Dense(8, activation="hard_sigmoid", name="se2_dense")(s2)
    return keras.layers.Multiply(name="se2_mul")([x, s2])


CASES = {
    # name: (body, ops left in the unpatched graph, patched layers)
    "gelu_exact": (_gelu_exact, {"Erfc"}, 3),
    "gelu_tanh": (_gelu_tanh, set(), 0),
    "grouped_conv": (_grouped, {"PartitionedCall"}, 3),
    "layernorm": (_layernorm, set(), 0),
    "depthwise": (_depthwise, {"SpaceToDepth", "DepthToSpace"}, 1),
    "hard_swish_se": (_hard_swish_se, set(), 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_patched_graph_loads_and_matches_keras(case: str) -> None:
    body, unpatched_bad, n_patched = CASES[case]
    model = _model(body)
    x = np.random.default_rng(0).uniform(-2, 2, (2, 29, 35, 3)).astype(np.float32)
    ref = np.asarray(model(x))

    before = _convert(model, patch=False)
    assert unpatched_bad <= _ops(before)
    if unpatched_bad & {"Erfc", "PartitionedCall"}:
        with pytest.raises(ExportError, match="could not be converted to ONNX"):
            check_graph(before, model)
    elif not unpatched_bad:  # converts as it is: the patch is not needed
        check_graph(before, model)
        assert _rel(_run(before, x), ref) < 1e-5
    with convertible_layers(model) as patched:
        assert len(patched) == n_patched
    after = _convert(model, patch=True)
    check_graph(after, model)
    assert not _ops(after) & {"Erfc", "PartitionedCall", "SpaceToDepth", "DepthToSpace"}
    assert _rel(_run(after, x), ref) < 1e-5
    assert np.array_equal(np.asarray(model(x)), ref)  # Keras itself is unchanged afterwards


def test_static_size_trace_matches_keras() -> None:
    model = _model(lambda k, x: _gelu_exact(k, _grouped(k, x)))
    x = np.random.default_rng(1).uniform(-2, 2, (1, 32, 32, 3)).astype(np.float32)
    proto = _convert(model, patch=True, hw=(32, 32))
    check_graph(proto, model)
    assert _rel(_run(proto, x), np.asarray(model(x))) < 1e-5


def test_layers_are_restored_exactly() -> None:
    keras = _keras()
    inner = keras.Sequential(
        [keras.Input((None, None, 16)), keras.layers.Conv2D(16, 3, groups=16, name="inner_dw")],
        name="inner",
    )
    model = _model(lambda k, x: _gelu_exact(k, inner(_depthwise(k, x))))
    ops = [op for op in model.operations if op.name != "image"] + inner.layers
    before = [(op, dict(op.__dict__)) for op in ops]
    with convertible_layers(model) as patched:
        assert "inner_dw (grouped-conv)" in patched  # nested models are walked
        assert "dense_gelu (exact-gelu)" in patched
        assert "convolution_op" in inner.get_layer("inner_dw").__dict__
    for op, attrs in before:
        assert op.__dict__.keys() == attrs.keys(), op.name
        assert all(op.__dict__[k] is v for k, v in attrs.items()), op.name
    keras_gelu = keras.activations.gelu
    assert model.get_layer("act_gelu").activation is keras_gelu


def test_layers_are_restored_when_the_body_raises() -> None:
    model = _model(_grouped)
    layer = model.get_layer("dw_as_conv")
    with pytest.raises(RuntimeError), convertible_layers(model):
        assert "convolution_op" in layer.__dict__
        raise RuntimeError("tf2onnx failed")
    assert "convolution_op" not in layer.__dict__


def _proto(nodes: list[Any]) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_check_graph_names_the_layer_of_a_partitioned_call() -> None:
    call = helper.make_node(
        "PartitionedCall", ["r"], ["y"], name="model/stage_0_dwconv_1/PartitionedCall"
    )
    relu = helper.make_node("Relu", ["x"], ["r"], name="model/stem_1/Relu")
    with pytest.raises(ExportError) as info:
        check_graph(_proto([relu, call]))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "layer 'model' (PartitionedCall) could not be converted to ONNX: TensorFlow traced"
    )

    # Exact names from the traced Keras model pick the innermost layer.
    fake = SimpleNamespace(name="model", layers=[SimpleNamespace(name="stage_0_dwconv")])
    with pytest.raises(ExportError, match=r"^layer 'stage_0_dwconv' \(PartitionedCall\)"):
        check_graph(_proto([relu, call]), fake)


def test_check_graph_unconverted_and_foreign_ops() -> None:
    erfc = [
        helper.make_node("Erfc", [i], [o], name=f"blk_gelu_1/{scope}/Erfc")
        for i, o, scope in [("x", "a", "Gelu"), ("a", "y", "Gelu_1")]
    ]
    with pytest.raises(ExportError, match=r"^layer 'blk_gelu' \(Erfc, 2 nodes\).*no converter"):
        check_graph(_proto(erfc))
    custom = helper.make_node("Foo", ["x"], ["y"], name="head/Foo", domain="ai.onnx.contrib")
    with pytest.raises(ExportError, match="'ai.onnx.contrib' domain"):
        check_graph(_proto([custom]))
    fine = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("FusedMatMul", ["r", "r"], ["y"], domain="com.microsoft"),
    ]
    check_graph(_proto(fine))  # standard and ORT-contrib ops pass


def test_tf_keras_exact_gelu() -> None:
    tf_keras = pytest.importorskip("tf_keras")
    import tensorflow as tf
    import tf2onnx

    tf_keras.utils.set_random_seed(4)
    inp = tf_keras.Input((None, None, 3))
    x = tf_keras.layers.Conv2D(4, 3, activation="gelu", name="conv_gelu")(inp)
    model = tf_keras.Model(inp, tf_keras.layers.Activation("gelu", name="act_gelu")(x))
    spec = [tf.TensorSpec((None, None, None, 3), tf.float32, name="images")]
    traced = tf.function(lambda images: {"out": model(images, training=False)}, spec)
    x = np.random.default_rng(2).uniform(-2, 2, (1, 20, 24, 3)).astype(np.float32)

    before, _ = tf2onnx.convert.from_function(traced, input_signature=spec, opset=17)
    with pytest.raises(ExportError, match="layer 'act_gelu' .*Erfc"):
        check_graph(before, model)
    with convertible_layers(model) as patched:
        assert patched == ["conv_gelu (exact-gelu)", "act_gelu (exact-gelu)"]
        traced = tf.function(lambda images: {"out": model(images, training=False)}, spec)
        after, _ = tf2onnx.convert.from_function(traced, input_signature=spec, opset=17)
    check_graph(after, model)
    assert _rel(_run(after, x), np.asarray(model(x))) < 1e-5
