"""A classifier head, described once for every importer, with its NumPy reference.

A head maps the feature maps A (N, h, w, K), NHWC, to the class scores (N, L) before the final
sigmoid/softmax: a spatial reduction (``gap``: mean over h, w; ``gmp``: max; ``flatten``:
row-major h, w, K), then a chain of layers on the (N, D) vector:

- ``Linear(weight (D_in, D_out), bias)``: Dense, or a 1x1 conv on the pooled (N, 1, 1, D) map;
- ``Affine(scale, shift)``: inference BatchNormalization;
- ``Norm(gamma, beta, epsilon)``: LayerNormalization over the last axis;
- ``Act(name, alpha)``: an element-wise activation of :data:`ACTIVATIONS`, or ``softmax``.

The maps the file computes (``cams`` (N, h, w, L), no ReLU, no bias):

- **cam** (a ``gap``/``gmp`` head with only Linear/Affine layers): the head collapses to one
  linear map ``W (K, L), b``; ``cams = A @ W`` (keras-explainable's CAM; the scores are
  ``reduce(A) @ W + b``, so for ``gap`` the spatial mean of the CAM plus b is the score).
- **grad-cam** (anything else: activations, LayerNorm, MLP heads, ``flatten`` heads): the
  closed-form Grad-CAM ``cams[n, i, j, c] = sum_k G[n, c, k] * A[n, i, j, k]`` with
  ``G[n, c, k] = sum_{i', j'} d score[n, c] / d A[n, i', j', k]``, the gradient summed over
  positions (Grad-CAM's position-averaged weights times h*w). It is computed by the chain rule
  through the head's layers at each image's own pooled features, with plain forward ops: no
  gradient ops in the file, so it runs on every execution provider (TensorRT included). With
  this scaling a linear ``gap`` head's Grad-CAM equals its CAM exactly, and maps of different
  input sizes (TTA scales) stay comparable.

:func:`reference_scores` and :func:`reference_cams` compute the same in float64 NumPy (the
export's parity check; the tests compare them with a ``tf.GradientTape`` Grad-CAM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "Act",
    "Affine",
    "HeadLayer",
    "HeadSpec",
    "Linear",
    "Norm",
    "activation_numpy",
    "reference_cams",
    "reference_scores",
]

#: Element-wise head activations with their exact definitions (see :func:`activation_numpy`).
ACTIVATIONS = (
    "relu",
    "relu6",
    "leaky_relu",
    "hard_sigmoid",
    "hard_swish",
    "swish",
    "gelu",
    "gelu_tanh",
    "sigmoid",
    "tanh",
    "softmax",
)

Reduce = Literal["gap", "gmp", "flatten"]


@dataclass(frozen=True, eq=False)
class Linear:
    weight: np.ndarray  # (D_in, D_out) float32
    bias: np.ndarray | None  # (D_out,) float32
    source: str = ""


@dataclass(frozen=True, eq=False)
class Affine:
    scale: np.ndarray  # (D,) float32
    shift: np.ndarray  # (D,) float32
    source: str = ""


@dataclass(frozen=True, eq=False)
class Norm:
    gamma: np.ndarray  # (D,) float32
    beta: np.ndarray  # (D,) float32
    epsilon: float
    source: str = ""


@dataclass(frozen=True, eq=False)
class Act:
    name: str  # one of ACTIVATIONS
    alpha: float = 0.0  # leaky_relu slope
    source: str = ""


HeadLayer = Linear | Affine | Norm | Act


@dataclass(frozen=True, eq=False)
class HeadSpec:
    """Reduction + layers from the features (h, w, K) to the pre-activation scores (L,).

    ``feature_shape`` is (h, w, K), with h and w known only for fixed-size models (``flatten``
    heads need them).
    """

    reduce: Reduce
    layers: tuple[HeadLayer, ...]
    feature_shape: tuple[int | None, int | None, int]

    @property
    def method(self) -> Literal["cam", "grad-cam"]:
        linear = all(isinstance(layer, (Linear, Affine)) for layer in self.layers)
        return "cam" if linear and self.reduce != "flatten" else "grad-cam"

    @property
    def num_classes(self) -> int:
        return int(self.collapsed_out_dim())

    def collapsed_out_dim(self) -> int:
        dim = self.feature_shape[2]
        for layer in self.layers:
            if isinstance(layer, Linear):
                dim = int(layer.weight.shape[1])
        return dim

    def collapsed(self) -> tuple[np.ndarray, np.ndarray | None]:
        """A linear head as one map: W (K, L) float32 and the bias (L,) or None."""
        if self.method != "cam":
            raise ValueError("only a linear (cam) head collapses to one W")
        k = self.feature_shape[2]
        weight = np.eye(k, dtype=np.float64)
        bias = np.zeros(k, np.float64)
        has_bias = False
        for layer in self.layers:
            if isinstance(layer, Linear):
                weight = weight @ layer.weight
                bias = bias @ layer.weight
                if layer.bias is not None:
                    bias = bias + layer.bias
                    has_bias = True
            elif isinstance(layer, Affine):
                weight = weight * layer.scale
                bias = bias * layer.scale + layer.shift
                has_bias = has_bias or bool(np.any(layer.shift))
        return weight.astype(np.float32), bias.astype(np.float32) if has_bias else None


_SQRT2 = math.sqrt(2.0)
_TANH_C = math.sqrt(2.0 / math.pi)
_erf = np.frompyfunc(math.erf, 1, 1)


def _erf64(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erf(x), dtype=np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def activation_numpy(name: str, z: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """The exact definition cam-rt writes into the graph (float64)."""
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "relu6":
        return np.clip(z, 0.0, 6.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "hard_sigmoid":
        return np.clip(z / 6.0 + 0.5, 0.0, 1.0)
    if name == "hard_swish":
        return z * np.clip(z / 6.0 + 0.5, 0.0, 1.0)
    if name == "swish":
        return z * _sigmoid(z)
    if name == "gelu":
        return 0.5 * z * (1.0 + _erf64(z / _SQRT2))
    if name == "gelu_tanh":
        return 0.5 * z * (1.0 + np.tanh(_TANH_C * (z + 0.044715 * z**3)))
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"activation {name!r} is not one of {ACTIVATIONS}")


def _derivative(name: str, z: np.ndarray, alpha: float) -> np.ndarray:
    """d act / d z, element-wise (not for softmax); the subgradient TensorFlow uses at kinks."""
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "relu6":
        return ((z > 0) & (z < 6)).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
    inner = ((z > -3) & (z < 3)).astype(np.float64) / 6.0
    if name == "hard_sigmoid":
        return inner
    if name == "hard_swish":
        return np.clip(z / 6.0 + 0.5, 0.0, 1.0) + z * inner
    if name == "swish":
        s = _sigmoid(z)
        return s + z * s * (1.0 - s)
    if name == "gelu":
        cdf = 0.5 * (1.0 + _erf64(z / _SQRT2))
        return cdf + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    if name == "gelu_tanh":
        t = np.tanh(_TANH_C * (z + 0.044715 * z**3))
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _TANH_C * (1.0 + 3 * 0.044715 * z * z)
    if name == "sigmoid":
        s = _sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    raise ValueError(f"activation {name!r} has no element-wise derivative")


def _reduce(spec: HeadSpec, features: np.ndarray) -> np.ndarray:
    a = features.astype(np.float64)
    if spec.reduce == "gap":
        return a.mean(axis=(1, 2))
    if spec.reduce == "gmp":
        return a.max(axis=(1, 2))
    return a.reshape(a.shape[0], -1)


def _forward(spec: HeadSpec, z: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scores and each layer's input."""
    inputs = []
    for layer in spec.layers:
        inputs.append(z)
        if isinstance(layer, Linear):
            z = z @ layer.weight + (0.0 if layer.bias is None else layer.bias)
        elif isinstance(layer, Affine):
            z = z * layer.scale + layer.shift
        elif isinstance(layer, Norm):
            mu = z.mean(axis=-1, keepdims=True)
            var = ((z - mu) ** 2).mean(axis=-1, keepdims=True)
            z = (z - mu) / np.sqrt(var + layer.epsilon) * layer.gamma + layer.beta
        else:
            z = activation_numpy(layer.name, z, layer.alpha)
    return z, inputs


def reference_scores(spec: HeadSpec, features: np.ndarray) -> np.ndarray:
    """(N, L) float32 pre-activation scores of ``features`` (N, h, w, K)."""
    scores, _ = _forward(spec, _reduce(spec, features))
    return scores.astype(np.float32)


def reference_cams(spec: HeadSpec, features: np.ndarray) -> np.ndarray:
    """(N, h, w, L) float32 maps of ``spec.method`` (see the module docstring)."""
    a = features.astype(np.float64)
    if spec.method == "cam":
        weight, _ = spec.collapsed()
        return (a @ weight.astype(np.float64)).astype(np.float32)
    z0 = _reduce(spec, a)
    _, inputs = _forward(spec, z0)
    grad = np.broadcast_to(
        np.eye(spec.num_classes), (a.shape[0], spec.num_classes, spec.num_classes)
    )
    for layer, z in zip(reversed(spec.layers), reversed(inputs), strict=True):
        if isinstance(layer, Linear):
            grad = grad @ layer.weight.T.astype(np.float64)
        elif isinstance(layer, Affine):
            grad = grad * layer.scale
        elif isinstance(layer, Norm):
            mu = z.mean(axis=-1, keepdims=True)
            inv = 1.0 / np.sqrt(((z - mu) ** 2).mean(axis=-1, keepdims=True) + layer.epsilon)
            xhat = ((z - mu) * inv)[:, None, :]
            g = grad * layer.gamma
            grad = (
                g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True)
            ) * inv[:, None, :]
        elif layer.name == "softmax":
            y = activation_numpy("softmax", z)[:, None, :]
            grad = grad * y - (grad * y).sum(axis=-1, keepdims=True) * y
        else:
            grad = grad * _derivative(layer.name, z, layer.alpha)[:, None, :]
    n, h, w, k = a.shape
    # gap: d z0/dA = 1/(h w) at every position, summed: G itself; gmp: the arg-max only, same.
    if spec.reduce == "flatten":  # d z0 / d A is the identity on positions: sum them
        grad = grad.reshape(n, -1, h * w, k).sum(axis=2)
    return np.einsum("nhwk,nck->nhwc", a, grad).astype(np.float32)
