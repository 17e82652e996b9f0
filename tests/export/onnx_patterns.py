"""ONNX classifiers in the patterns torch.onnx and tf2onnx emit, built with onnx.helper.

Names follow the exporters (torch: ``/layer1/conv1/Conv``, ``onnx::Gemm_123``, ``input``
with ``batch_size``; tf2onnx: ``input_1:0``, ``StatefulPartitionedCall/...``). Weights are
seeded random; BatchNorm is folded into the convs as torch.onnx does in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, opset: int = 17, seed: int = 0) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        self.count += 1
        name = name or f"onnx::Const_{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, **attrs: Any) -> str:
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, name: str) -> str:
        w = self.rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)).astype(np.float32)
        b = self.rng.normal(0, 0.1, cout).astype(np.float32)
        return self.node(
            "Conv",
            [x, self.const(w, f"{name}.weight"), self.const(b, f"{name}.bias")],
            f"/{name}/Conv",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
        )

    def gemm(self, x: str, cin: int, cout: int, name: str, trans_b: int = 1) -> str:
        w = self.rng.normal(0, 1.0 / np.sqrt(cin), (cout, cin)).astype(np.float32)
        b = self.rng.normal(0, 0.1, cout).astype(np.float32)
        return self.node(
            "Gemm",
            [x, self.const(w if trans_b else w.T.copy(), f"{name}.weight"), self.const(b)],
            f"/{name}/Gemm",
            alpha=1.0,
            beta=1.0,
            transB=trans_b,
        )

    def clip6(self, x: str, name: str) -> str:
        low, high = self.const(np.float32(0)), self.const(np.float32(6))
        return self.node("Clip", [x, low, high], f"/{name}/Clip")

    def model(
        self, input_name: str, input_shape: list[Any], outputs: dict[str, str], path: Path
    ) -> Path:
        graph_outputs = []
        for name, tensor in outputs.items():
            self.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"out_{name}"))
            graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
        graph = helper.make_graph(
            self.nodes,
            "main_graph",
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
            graph_outputs,
            self.inits,
        )
        proto = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="pytorch"
        )
        proto.ir_version = 8
        proto = onnx.shape_inference.infer_shapes(proto)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
        return path


def _body(b: Builder, x: str, act: str = "relu", width: int = 8) -> tuple[str, int]:
    """Three stride-2 convs with a residual block: (features (N, 2w, H/8, W/8), channels)."""

    def activate(t: str, name: str) -> str:
        if act == "relu6":
            return b.clip6(t, name)
        if act == "silu":
            return b.node("Mul", [t, b.node("Sigmoid", [t], f"/{name}/Sigmoid")], f"/{name}/Mul")
        return b.node("Relu", [t], f"/{name}/Relu")

    x = activate(b.conv(x, 3, width, 3, 2, "conv1"), "relu")
    x = activate(b.conv(x, width, width, 3, 2, "layer1/0/conv1"), "layer1/0/relu")
    y = b.conv(
        activate(b.conv(x, width, width, 3, 1, "layer1/1/conv1"), "layer1/1/r"),
        width,
        width,
        3,
        1,
        "layer1/1/conv2",
    )
    x = activate(b.node("Add", [x, y], "/layer1/1/Add"), "layer1/1/relu")
    x = activate(b.conv(x, width, 2 * width, 3, 2, "layer2/0/conv1"), "layer2/0/relu")
    return x, 2 * width


def torchvision_resnet(path: Path, classes: int = 5, size: int = 64, act: str = "relu") -> Path:
    """conv body -> GlobalAveragePool -> Flatten -> Gemm(transB=1): logits, dynamic batch."""
    b = Builder()
    features, c = _body(b, "input", act)
    pooled = b.node("GlobalAveragePool", [features], "/avgpool/GlobalAveragePool")
    flat = b.node("Flatten", [pooled], "/Flatten", axis=1)
    if act == "relu6":  # torchvision MobileNetV2: a Dropout left in the graph
        flat = b.node("Identity", [flat], "/classifier/classifier.0/Dropout")
    logits = b.gemm(flat, c, classes, "fc")
    return b.model("input", ["batch_size", 3, size, size], {"logits": logits}, path)


def timm_reduce_mean(path: Path, classes: int = 4, size: int = 64, opset: int = 13) -> Path:
    """timm: ``x.mean((2, 3))`` -> ReduceMean(axes=[2, 3], keepdims=0) -> Gemm; batch 1."""
    b = Builder(opset=opset, seed=1)
    features, c = _body(b, "x", "silu")
    # a squeeze-excite block as torch exports it with batch 1: view(1, C, 1, 1)
    squeezed = b.node("GlobalAveragePool", [features], "/se/GlobalAveragePool")
    flat = b.node("Reshape", [squeezed, b.const(np.array([1, c], np.int64))], "/se/Reshape")
    gate = b.node("Sigmoid", [b.gemm(flat, c, c, "se/fc")], "/se/Sigmoid")
    gate = b.node("Reshape", [gate, b.const(np.array([1, c, 1, 1], np.int64))], "/se/Reshape_1")
    features = b.node("Mul", [features, gate], "/se/Mul")
    if opset >= 18:
        axes = b.const(np.array([2, 3], np.int64))
        pooled = b.node("ReduceMean", [features, axes], "/head/global_pool/ReduceMean", keepdims=0)
    else:
        pooled = b.node(
            "ReduceMean", [features], "/head/global_pool/ReduceMean", axes=[2, 3], keepdims=0
        )
    logits = b.gemm(pooled, c, classes, "head/fc")
    return b.model("x", [1, 3, size, size], {"output": logits}, path)


def mlp_head(path: Path, classes: int = 3, size: int = 48) -> Path:
    """GAP -> Flatten -> Gemm -> Relu -> Dropout -> Gemm -> Sigmoid (multi-label, Grad-CAM)."""
    b = Builder(seed=2)
    features, c = _body(b, "input")
    flat = b.node("Flatten", [b.node("GlobalAveragePool", [features], "/pool")], "/flat", axis=1)
    hidden = b.node("Relu", [b.gemm(flat, c, 12, "head/0")], "/head/1/Relu")
    hidden = b.node("Identity", [hidden], "/head/2/Dropout")
    logits = b.gemm(hidden, 12, classes, "head/3")
    probs = b.node("Sigmoid", [logits], "/Sigmoid")
    return b.model("input", ["batch_size", 3, size, size], {"probs": probs}, path)


def vgg_flatten(path: Path, classes: int = 3, size: int = 32) -> Path:
    """conv -> MaxPool -> Flatten of the map -> Gemm -> Relu -> Gemm -> Softmax; fixed size."""
    b = Builder(seed=3)
    x = b.node("Relu", [b.conv("input", 3, 4, 3, 1, "features/0")], "/features/1/Relu")
    x = b.node("MaxPool", [x], "/features/2/MaxPool", kernel_shape=[4, 4], strides=[4, 4])
    flat = b.node("Flatten", [x], "/Flatten", axis=1)
    k = 4 * (size // 4) ** 2
    hidden = b.node("Relu", [b.gemm(flat, k, 10, "classifier/0")], "/classifier/1/Relu")
    logits = b.gemm(hidden, 10, classes, "classifier/3")
    probs = b.node("Softmax", [logits], "/Softmax", axis=1)
    return b.model("input", [1, 3, size, size], {"output": probs}, path)


def tf2onnx_nhwc(path: Path, classes: int = 4, size: int = 40) -> Path:
    """tf2onnx: NHWC input -> Transpose -> convs -> Transpose back -> ReduceMean(1, 2) ->
    MatMul -> Add -> Softmax."""
    b = Builder(opset=15, seed=4)
    x = b.node(
        "Transpose",
        ["input_1:0"],
        "StatefulPartitionedCall/model/conv/Conv2D__6",
        perm=[0, 3, 1, 2],
    )
    features, c = _body(b, x)
    nhwc = b.node(
        "Transpose", [features], "StatefulPartitionedCall/model/relu/Relu__8", perm=[0, 2, 3, 1]
    )
    pooled = b.node(
        "ReduceMean", [nhwc], "StatefulPartitionedCall/model/gap/Mean", axes=[1, 2], keepdims=0
    )
    w = b.rng.normal(0, 0.5, (c, classes)).astype(np.float32)
    mm = b.node(
        "MatMul",
        [pooled, b.const(w, "dense/kernel:0")],
        "StatefulPartitionedCall/model/dense/MatMul",
    )
    added = b.node(
        "Add", [mm, b.const(b.rng.normal(0, 0.1, classes).astype(np.float32))], "dense/BiasAdd"
    )
    probs = b.node("Softmax", [added], "StatefulPartitionedCall/model/dense/Softmax", axis=-1)
    return b.model("input_1:0", ["unk__12", size, size, 3], {"dense": probs}, path)


def two_heads(path: Path) -> Path:
    b = Builder(seed=5)
    features, c = _body(b, "input")
    early = b.node("GlobalAveragePool", ["/layer1/1/relu/Relu_output_0"], "/aux/pool")
    aux = b.gemm(b.node("Flatten", [early], "/aux/flat", axis=1), c // 2, 2, "aux/fc")
    main = b.gemm(
        b.node("Flatten", [b.node("GlobalMaxPool", [features], "/pool")], "/flat", axis=1),
        c,
        3,
        "fc",
    )
    return b.model("input", ["batch_size", 3, 32, 32], {"main": main, "aux": aux}, path)


def no_head(path: Path) -> Path:
    b = Builder(seed=6)
    features, _ = _body(b, "input")
    return b.model("input", ["batch_size", 3, 32, 32], {"maps": features}, path)


def with_features_output(src: Path, features: str, dst: Path) -> Path:
    """A copy of ``src`` that also outputs the tensor ``features`` (the test's reference)."""
    proto = onnx.load(str(src))
    proto.graph.output.append(helper.make_tensor_value_info(features, TensorProto.FLOAT, None))
    onnx.save(proto, str(dst))
    return dst
