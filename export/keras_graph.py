"""A flat view of a Keras model: every layer call, nested models inlined, on a new input.

``replay(model, keras_module, spatial)`` calls the model's layers again, in their graph order,
on a new ``Input((H, W, 3))`` (``H, W = None, None`` for a dynamic size), inlining nested
Functional and Sequential models so that each inner layer's output is a tensor of one flat
graph. The layers (and so the weights) are shared with the original model; nothing is copied.

Why replay instead of calling the model: a model built with ``Input((224, 224, 3))`` refuses
any other size at its input check, and so does a nested base model (the usual fine-tuning
pattern). Convolutions, pooling, normalisation, element-wise ops and global pooling do not
depend on the size; layers that do (Flatten -> Dense, Reshape to a fixed size) fail when the
replayed graph runs at another size, which the export detects with a probe and then exports
at the trained size instead.

Works for Keras 3 (``keras``) and Keras 2 (``tf_keras``) Functional and Sequential models;
a subclassed model is called as one opaque layer. Layer paths are ``outer/inner/layer``
(the top model's name left out).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from cam_rt.runtime.errors import ExportError

__all__ = ["FlatGraph", "FlatOp", "replay"]


@dataclass(eq=False)
class FlatOp:
    """One layer (or Keras 3 operation) call of the flat graph."""

    path: str
    layer: Any
    inputs: list[Any]  # the symbolic input tensors of this call, in order
    outputs: list[Any]

    @property
    def kind(self) -> str:
        return type(self.layer).__name__

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(eq=False)
class FlatGraph:
    """The replayed model: ``input`` (symbolic), ``output`` (the model's single output)."""

    input: Any
    output: Any
    ops: list[FlatOp] = field(default_factory=list)
    _producers: dict[int, FlatOp] = field(default_factory=dict)

    def add(self, op: FlatOp) -> None:
        self.ops.append(op)
        for tensor in op.outputs:
            self._producers[id(tensor)] = op

    def producer(self, tensor: Any) -> FlatOp | None:
        """The call that made ``tensor`` (None for the input)."""
        return self._producers.get(id(tensor))

    def find(self, name: str, what: str) -> FlatOp:
        """The layer called ``name`` at any depth, or at the path ``outer/inner/name``.

        ``/`` and ``_`` spellings of a name both match (Keras 3 refuses ``/`` in names).
        The last call wins for a layer called more than once. Ambiguous names are refused.
        """
        wanted = {name, name.replace("/", "_")}
        by_path = [op for op in self.ops if op.path in wanted]
        if by_path:
            return by_path[-1]
        matches = [op for op in self.ops if op.name in wanted]
        paths = sorted({op.path for op in matches})
        if len(paths) > 1:
            raise ExportError(
                f"{what} '{name}' names {len(paths)} layers ({', '.join(paths[:4])}): give its "
                "path, e.g. --feature-layer " + paths[0]
            )
        if matches:
            return matches[-1]
        every = [op.path for op in self.ops]
        close = difflib.get_close_matches(name, every, n=5, cutoff=0.4)
        hint = f"closest: {', '.join(close)}" if close else f"last layers: {', '.join(every[-6:])}"
        raise ExportError(f"{what} '{name}' is not a layer of the model ({hint})")


def _is_sequential(layer: Any, keras_module: ModuleType) -> bool:
    return isinstance(layer, keras_module.Sequential)


def _is_functional(layer: Any) -> bool:
    return bool(
        getattr(layer, "_nodes_by_depth", None) and getattr(layer, "inputs", None) is not None
    )


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flatten(v)]
    return [value]


class _Always(list[Any]):
    """A tf_keras tensor-dict entry that can be popped any number of times."""

    def pop(self, index: Any = -1) -> Any:
        return self[0]


def _call(graph: FlatGraph, path: str, layer: Any, args: Any, kwargs: Any) -> Any:
    inputs = [t for t in _flatten((args, kwargs)) if hasattr(t, "shape")]
    try:
        outputs = layer(*args, **kwargs)
    except Exception as exc:  # a layer refusing the new input (its shape depends on the size)
        raise _ReplayError(path, type(layer).__name__, exc) from exc
    graph.add(FlatOp(path, layer, inputs, _flatten(outputs)))
    return outputs


class _ReplayError(Exception):
    def __init__(self, path: str, kind: str, cause: BaseException) -> None:
        text = str(cause).strip().splitlines()
        super().__init__(f"layer '{path}' ({kind}): {text[0] if text else type(cause).__name__}")
        self.path = path


def _run(
    model: Any, inputs: list[Any], graph: FlatGraph, prefix: str, keras_module: ModuleType
) -> list[Any]:
    """Replay ``model`` on ``inputs``; returns its outputs (flat list)."""
    if _is_sequential(model, keras_module):
        x = inputs[0] if len(inputs) == 1 else inputs
        for layer in model.layers:
            x = _apply(layer, [x], graph, prefix, keras_module)
        return _flatten(x)
    if not _is_functional(model):  # subclassed: one opaque call
        return _flatten(_call(graph, prefix.rstrip("/") or model.name, model, inputs, {}))
    tf_keras = not hasattr(next(iter(model._nodes_by_depth.values()))[0], "operation")
    tensors: dict[Any, Any] = {}
    for ref, new in zip(model.inputs, inputs, strict=True):
        tensors[str(id(ref)) if tf_keras else id(ref)] = _Always([new]) if tf_keras else new
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            if tf_keras:
                if any(i not in tensors for i in node.flat_input_ids):
                    continue
                args, kwargs = node.map_arguments(tensors)
                layer, out_ids = node.layer, node.flat_output_ids
            else:
                if not node.operation or any(id(t) not in tensors for t in node.input_tensors):
                    continue
                args, kwargs = node.arguments.fill_in(tensors)
                layer, out_ids = node.operation, [id(t) for t in node.outputs]
            if _is_sequential(layer, keras_module) or _is_functional(layer):
                flat_in = [t for t in _flatten((args, kwargs)) if hasattr(t, "shape")]
                outputs = _run(layer, flat_in, graph, f"{prefix}{layer.name}/", keras_module)
            else:
                outputs = _flatten(_call(graph, prefix + layer.name, layer, args, kwargs))
            for key, value in zip(out_ids, outputs, strict=True):
                tensors[key] = _Always([value]) if tf_keras else value
    results = []
    for ref in model.outputs:
        value = tensors[str(id(ref)) if tf_keras else id(ref)]
        results.append(value[0] if tf_keras else value)
    return results


def _apply(
    layer: Any, inputs: list[Any], graph: FlatGraph, prefix: str, keras_module: ModuleType
) -> Any:
    if _is_sequential(layer, keras_module) or _is_functional(layer):
        outs = _run(layer, _flatten(inputs), graph, f"{prefix}{layer.name}/", keras_module)
        return outs[0] if len(outs) == 1 else outs
    return _call(graph, prefix + layer.name, layer, tuple(inputs), {})


def replay(
    model: Any, keras_module: ModuleType, spatial: tuple[int | None, int | None]
) -> FlatGraph:
    """Replay ``model`` on a new ``Input((*spatial, 3))``, nested models inlined.

    Raises ExportError for models with several inputs or outputs, and ``ReplayError`` (an
    ExportError subclass) naming the layer when a layer refuses the new input.
    """
    if len(model.inputs) != 1:
        raise ExportError(
            f"model '{model.name}' has {len(model.inputs)} inputs; cam-rt exports single-input "
            "image classifiers: export a one-input sub-model"
        )
    new_input = keras_module.Input(shape=(*spatial, 3), name="images")
    graph = FlatGraph(input=new_input, output=None)
    try:
        outputs = _run(model, [new_input], graph, "", keras_module)
    except _ReplayError as exc:
        raise ReplayError(str(exc), exc.path) from exc
    if len(outputs) != 1:
        raise ExportError(
            f"model '{model.name}' has {len(outputs)} outputs; cam-rt needs one class-score "
            "output: export a sub-model with the classifier's output"
        )
    graph.output = outputs[0]
    return graph


class ReplayError(ExportError):
    """A layer refused the replayed input (its output depends on the input size)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path
