"""Decide how a model is exported: at any input size (rebuilt) or at its trained size.

A model built with ``Input((224, 224, 3))`` is replayed on ``Input((None, None, 3))``
(:func:`cam_rt.export.keras_graph.replay`) and probed in Keras at another size. When that works
the file takes any size; when a layer needs the trained size (Flatten -> Dense, a Reshape to a
fixed shape, a pooling window the size of the map), the model is exported at its trained size
and the runtime resizes images to it. Either way the trained size is recorded in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from cam_rt.runtime.errors import ExportError

from .expose import Exposed, expose
from .keras_graph import FlatGraph, replay

__all__ = ["ExportPlan", "other_size", "plan_export", "trained_size"]


@dataclass(frozen=True, eq=False)
class ExportPlan:
    """The replayed graph, its head, the Keras models the export traces and checks with.

    ``body``: images -> [features]; ``checker``: images -> [features, check tensor].
    ``fixed``: the file takes only ``input_size``; ``why_fixed`` says which layer needs it.
    """

    graph: FlatGraph
    exposed: Exposed
    body: Any
    checker: Any
    input_size: tuple[int, int] | None
    fixed: bool
    why_fixed: str
    output_stride: int
    check_sizes: tuple[tuple[int, int], ...]


def trained_size(model: Any) -> tuple[int, int] | None:
    """The (H, W) of the model's image input, None when either is dynamic; checks the input."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ExportError(
            f"model '{model.name}' has no defined input (an unbuilt Sequential?): build it with "
            "an Input layer, e.g. keras.Input((None, None, 3))"
        )
    if len(inputs) != 1:
        raise ExportError(
            f"model '{model.name}' has {len(inputs)} inputs; cam-rt exports single-input image "
            "classifiers: export a one-input sub-model"
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
    h, w = shape[1], shape[2]
    return (int(h), int(w)) if h is not None and w is not None else None


def other_size(size: tuple[int, int]) -> tuple[int, int]:
    """A second, odd, non-square check size near the trained one: 1.25 x H by 1.5 x W (larger,
    so models with a minimum input size, e.g. InceptionV3's 75 px, run at it)."""
    h, w = size
    return ((h + h // 4) | 1, (w + w // 2) | 1)


def _models(graph: FlatGraph, exposed: Exposed, keras_module: ModuleType) -> tuple[Any, Any]:
    body = keras_module.Model(graph.input, [exposed.features], name="cam_rt_body")
    checker = keras_module.Model(
        graph.input, [exposed.features, exposed.check], name="cam_rt_check"
    )
    return body, checker


def _probe(checker: Any, size: tuple[int, int]) -> tuple[int, int]:
    """Run ``checker`` at ``size``; returns the feature map's (h, w)."""
    x = np.zeros((1, *size, 3), np.float32)
    features, check = checker(x, training=False)
    if len(tuple(check.shape)) != 2:
        raise ValueError(f"the scores have shape {tuple(check.shape)} at {size[0]}x{size[1]}")
    return int(features.shape[1]), int(features.shape[2])


def plan_export(
    model: Any,
    keras_module: ModuleType,
    feature_layer: str | None,
    score_layer: str | None,
    check_sizes: tuple[tuple[int, int], ...] | None,
    default_check_sizes: tuple[tuple[int, int], ...],
) -> ExportPlan:
    """Replay, find the head and probe (see the module docstring)."""
    size = trained_size(model)
    if size is None:
        graph = replay(model, keras_module, (None, None))
        exposed = expose(graph, feature_layer, score_layer)
        body, checker = _models(graph, exposed, keras_module)
        sizes = check_sizes or default_check_sizes
        probe = (64, 96)  # a multiple of the usual strides: the ratio is the stride
        try:
            fh, _ = _probe(checker, probe)
        except Exception:
            probe = sizes[-1]
            try:
                fh, _ = _probe(checker, probe)
            except Exception as exc:
                raise ExportError(
                    f"the model does not run at {probe[0]}x{probe[1]} ({_line(exc)}): pass "
                    "--check-sizes with sizes it accepts"
                ) from exc
        stride = max(1, round(probe[0] / fh))
        return ExportPlan(graph, exposed, body, checker, None, False, "", stride, sizes)

    probe_size = other_size(size)
    why = ""
    try:
        graph = replay(model, keras_module, (None, None))
        exposed = expose(graph, feature_layer, score_layer)
        body, checker = _models(graph, exposed, keras_module)
        fh, _ = _probe(checker, probe_size)
    except Exception as exc:  # any failure at another size: export at the trained size
        why = _line(exc)
    else:
        sizes = (size, *(check_sizes or (probe_size,)))
        stride = max(1, round(size[0] / _probe(checker, size)[0]))
        return ExportPlan(graph, exposed, body, checker, size, False, "", stride, sizes)

    graph = replay(model, keras_module, size)
    exposed = expose(graph, feature_layer, score_layer)
    body, checker = _models(graph, exposed, keras_module)
    try:
        fh, _ = _probe(checker, size)
    except Exception as exc:
        raise ExportError(
            f"Keras cannot run the model at its own input size {size[0]}x{size[1]} "
            f"({_line(exc)}): check that it predicts in Keras, then export again"
        ) from exc
    stride = max(1, round(size[0] / fh))
    return ExportPlan(graph, exposed, body, checker, size, True, why, stride, (size, size))


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
