"""Write a :class:`~cam_rt.export.head.HeadSpec` into an ONNX graph: scores and CAMs.

The graph must have a tensor of the feature maps A (N, h, w, K), NHWC. :func:`append_head`
adds the reduction, the head's layers (scores) and the maps of the head's method (the formulas
are in :mod:`cam_rt.export.head`), all with standard ONNX ops of opset 13+ (no gradient ops,
no custom domains), then makes ``scores`` and ``cams`` (or ``features``) the graph outputs.
Constants are initializers; ONNX Runtime's optimizer folds what is constant afterwards.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from cam_rt.runtime.metadata import SCORES_NAME

from ._deps import import_optional
from .head import Act, Affine, HeadSpec, Linear, Norm

__all__ = ["append_head"]


class _Writer:
    def __init__(self, graph: Any, opset: int, prefix: str = "cam_rt_head") -> None:
        self.onnx = import_optional("onnx", "onnx", "writing ONNX files")
        self.graph = graph
        self.opset = opset
        self._ids = itertools.count()
        self.prefix = prefix

    def name(self, hint: str) -> str:
        return f"{self.prefix}/{hint}_{next(self._ids)}"

    def const(self, value: np.ndarray | float, hint: str = "c") -> str:
        array = np.asarray(value, dtype=np.float32)
        name = self.name(hint)
        self.graph.initializer.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values: list[int], hint: str = "axes") -> str:
        name = self.name(hint)
        array = np.asarray(values, dtype=np.int64)
        self.graph.initializer.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output or self.name(op_type.lower())
        node = self.onnx.helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs)
        self.graph.node.append(node)
        return out

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int) -> str:
        # Axes are an input of ReduceSum from opset 13, of ReduceMean/ReduceMax from 18.
        if self.opset >= (13 if op_type == "ReduceSum" else 18):
            return self.op(op_type, [x, self.ints(axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    def unsqueeze1(self, x: str) -> str:
        return self.op("Unsqueeze", [x, self.ints([1])])

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", [a, b])

    def between(self, z: str, low: float, high: float) -> str:
        inside = self.op(
            "And",
            [
                self.op("Greater", [z, self.const(low)]),
                self.op("Less", [z, self.const(high)]),
            ],
        )
        return self.op("Cast", [inside], to=self.onnx.TensorProto.FLOAT)

    # Activations -----------------------------------------------------------------------
    def act(self, layer: Act, z: str) -> str:
        name = layer.name
        if name == "relu":
            return self.op("Relu", [z])
        if name == "relu6":
            return self.op("Clip", [z, self.const(0.0), self.const(6.0)])
        if name == "leaky_relu":
            return self.op("LeakyRelu", [z], alpha=float(layer.alpha))
        if name == "hard_sigmoid":
            return self.op("HardSigmoid", [z], alpha=1.0 / 6.0, beta=0.5)
        if name == "hard_swish":
            return self.mul(z, self.op("HardSigmoid", [z], alpha=1.0 / 6.0, beta=0.5))
        if name == "swish":
            return self.mul(z, self.op("Sigmoid", [z]))
        if name == "gelu":
            return self.mul(z, self._normal_cdf(z))
        if name == "gelu_tanh":
            return self.mul(
                self.mul(z, self.const(0.5)), self.add(self.const(1.0), self._gelu_t(z))
            )
        if name == "sigmoid":
            return self.op("Sigmoid", [z])
        if name == "tanh":
            return self.op("Tanh", [z])
        if name == "softmax":
            return self.op("Softmax", [z], axis=-1)
        raise ValueError(f"activation {name!r} cannot be written")

    def _normal_cdf(self, z: str) -> str:
        erf = self.op("Erf", [self.mul(z, self.const(1.0 / math.sqrt(2.0)))])
        return self.mul(self.const(0.5), self.add(self.const(1.0), erf))

    def _gelu_t(self, z: str) -> str:
        cube = self.mul(self.mul(z, z), z)
        inner = self.add(z, self.mul(cube, self.const(0.044715)))
        return self.op("Tanh", [self.mul(inner, self.const(math.sqrt(2.0 / math.pi)))])

    def derivative(self, layer: Act, z: str) -> str:
        """d act / d z element-wise, (N, D) (TensorFlow's subgradient at kinks)."""
        name = layer.name
        if name == "relu":
            return self.op("Cast", [self.op("Greater", [z, self.const(0.0)])], to=1)
        if name == "relu6":
            return self.between(z, 0.0, 6.0)
        if name == "leaky_relu":
            positive = self.op("Greater", [z, self.const(0.0)])
            return self.op("Where", [positive, self.const(1.0), self.const(layer.alpha)])
        inner = self.mul(self.between(z, -3.0, 3.0), self.const(1.0 / 6.0))
        if name == "hard_sigmoid":
            return inner
        if name == "hard_swish":
            hs = self.op("HardSigmoid", [z], alpha=1.0 / 6.0, beta=0.5)
            return self.add(hs, self.mul(z, inner))
        if name in ("swish", "sigmoid"):
            s = self.op("Sigmoid", [z])
            ds = self.mul(s, self.sub(self.const(1.0), s))
            return ds if name == "sigmoid" else self.add(s, self.mul(z, ds))
        if name == "gelu":
            pdf = self.op("Exp", [self.mul(self.mul(z, z), self.const(-0.5))])
            pdf = self.mul(pdf, self.const(1.0 / math.sqrt(2.0 * math.pi)))
            return self.add(self._normal_cdf(z), self.mul(z, pdf))
        if name == "gelu_tanh":
            t = self._gelu_t(z)
            one_minus = self.sub(self.const(1.0), self.mul(t, t))
            poly = self.add(self.const(1.0), self.mul(self.mul(z, z), self.const(3 * 0.044715)))
            slope = self.mul(self.mul(z, one_minus), poly)
            slope = self.mul(slope, self.const(0.5 * math.sqrt(2.0 / math.pi)))
            return self.add(self.mul(self.const(0.5), self.add(self.const(1.0), t)), slope)
        if name == "tanh":
            t = self.op("Tanh", [z])
            return self.sub(self.const(1.0), self.mul(t, t))
        raise ValueError(f"activation {name!r} has no element-wise derivative")

    # LayerNorm ---------------------------------------------------------------------------
    def norm(self, layer: Norm, z: str) -> tuple[str, str, str]:
        """y, xhat and 1/sigma (both (N, D) / (N, 1)) of a LayerNormalization over axis -1."""
        mu = self.reduce("ReduceMean", z, [-1], 1)
        centred = self.sub(z, mu)
        var = self.reduce("ReduceMean", self.mul(centred, centred), [-1], 1)
        inv = self.op("Reciprocal", [self.op("Sqrt", [self.add(var, self.const(layer.epsilon))])])
        xhat = self.mul(centred, inv)
        y = self.add(self.mul(xhat, self.const(layer.gamma)), self.const(layer.beta))
        return y, xhat, inv


def append_head(
    model_proto: Any, features: str, spec: HeadSpec, output_kind: str, opset: int
) -> None:
    """Add scores and maps computed from the tensor ``features`` (N, h, w, K) to the graph.

    Outputs afterwards: ``scores`` (N, L) and ``cams`` (N, h, w, L), or ``scores`` and
    ``features`` (N, h, w, K) for ``output_kind == "features"`` (cam heads only).
    """
    onnx = import_optional("onnx", "onnx", "writing ONNX files")
    graph = model_proto.graph
    w = _Writer(graph, opset)
    fp32 = onnx.TensorProto.FLOAT

    if spec.reduce == "gap":
        z0 = w.reduce("ReduceMean", features, [1, 2], 0)
    elif spec.reduce == "gmp":
        z0 = w.reduce("ReduceMax", features, [1, 2], 0)
    else:
        z0 = w.op("Flatten", [features], axis=1)

    outputs: dict[str, str] = {}
    if spec.method == "cam":
        weight, bias = spec.collapsed()
        wname = w.const(weight, "cam_weights")
        scores = w.op("MatMul", [z0, wname])
        if bias is not None:
            scores = w.add(scores, w.const(bias, "bias"))
        outputs[SCORES_NAME] = scores
        if output_kind == "features":
            outputs["features"] = features
        else:
            outputs["cams"] = w.op("MatMul", [features, wname])
    else:
        scores, grad = _grad_cam(w, spec, z0)
        outputs[SCORES_NAME] = scores
        # G (N, L, K) -> (N, 1, K, L): one batched MatMul (N, h, w, K) @ (N, 1, K, L).
        weights = w.unsqueeze1(w.op("Transpose", [grad], perm=[0, 2, 1]))
        outputs["cams"] = w.op("MatMul", [features, weights])

    del graph.output[:]
    for name, tensor in outputs.items():
        if tensor != name:
            graph.node.append(
                onnx.helper.make_node("Identity", [tensor], [name], name=f"out_{name}")
            )
        rank = 2 if name == SCORES_NAME else 4
        graph.output.append(onnx.helper.make_tensor_value_info(name, fp32, [None] * rank))


def _grad_cam(w: _Writer, spec: HeadSpec, z0: str) -> tuple[str, str]:
    """Forward through the layers (scores), then the chain rule back to G (N, L, K)."""
    first_linear_of_flatten = spec.reduce == "flatten" and isinstance(spec.layers[0], Linear)
    z, inputs, extras = z0, [], []
    for layer in spec.layers:
        inputs.append(z)
        extra: tuple[str, str] | None = None
        if isinstance(layer, Linear):
            z = w.op("MatMul", [z, w.const(layer.weight, "weight")])
            if layer.bias is not None:
                z = w.add(z, w.const(layer.bias, "bias"))
        elif isinstance(layer, Affine):
            z = w.add(w.mul(z, w.const(layer.scale)), w.const(layer.shift))
        elif isinstance(layer, Norm):
            z, xhat, inv = w.norm(layer, z)
            extra = (w.unsqueeze1(xhat), w.unsqueeze1(inv))
        else:
            z = w.act(layer, z)
            if layer.name == "softmax":
                extra = (w.unsqueeze1(z), "")
        extras.append(extra)
    scores = z

    grad: str | None = None  # None: the identity (L, L)
    num = len(spec.layers)
    for index in range(num - 1, -1, -1):
        layer, z, extra = spec.layers[index], inputs[index], extras[index]
        if grad is None and not isinstance(layer, Linear):
            grad = w.const(np.eye(spec.num_classes, dtype=np.float32)[None], "eye")
        if isinstance(layer, Linear):
            weight = layer.weight
            if index == 0 and first_linear_of_flatten:  # sum over positions folded into W
                h, wd, k = spec.feature_shape
                weight = weight.reshape(int(h or 0), int(wd or 0), k, -1).sum(axis=(0, 1))
            transposed = w.const(np.ascontiguousarray(weight.T)[None], "weight_t")
            grad = transposed if grad is None else w.op("MatMul", [grad, transposed])
        elif isinstance(layer, Affine):
            grad = w.mul(grad, w.const(layer.scale))
        elif isinstance(layer, Norm):
            assert extra is not None
            xhat, inv = extra
            g = w.mul(grad, w.const(layer.gamma))
            mean_g = w.reduce("ReduceMean", g, [-1], 1)
            mean_gx = w.reduce("ReduceMean", w.mul(g, xhat), [-1], 1)
            grad = w.mul(w.sub(w.sub(g, mean_g), w.mul(xhat, mean_gx)), inv)
        elif layer.name == "softmax":
            assert extra is not None
            y = extra[0]
            gy = w.mul(grad, y)
            grad = w.sub(gy, w.mul(w.reduce("ReduceSum", gy, [-1], 1), y))
        else:
            grad = w.mul(grad, w.unsqueeze1(w.derivative(layer, z)))
    assert grad is not None
    if spec.reduce == "flatten" and not first_linear_of_flatten:
        h, wd, k = spec.feature_shape
        shaped = w.op(
            "Reshape", [grad, w.ints([0, spec.num_classes, int(h or 0) * int(wd or 0), k])]
        )
        grad = w.reduce("ReduceSum", shaped, [2], 0)
    # A batch-independent G (1, L, K) still broadcasts in the final MatMul.
    return scores, grad
