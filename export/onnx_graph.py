"""Reading an ONNX classifier made elsewhere (torch.onnx, timm, tf2onnx): load, index, constants.

:func:`load_classifier` opens the file (external data included), checks the opset (13 to 21),
turns an fp16 model into fp32 (initializers, constants, casts, inputs and outputs), and returns
an :class:`OnnxGraph`: who produces and who consumes each tensor, constant values (initializers,
``Constant`` nodes, through ``Identity``/``Cast``), and shapes from ONNX shape inference.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cam_rt.runtime.errors import ModelLoadError

from ._deps import import_optional

__all__ = ["MAX_OPSET", "MIN_OPSET", "OnnxGraph", "load_classifier"]

MIN_OPSET, MAX_OPSET = 13, 21
#: Nodes that pass their first input through unchanged at inference.
PASS_THROUGH = ("Identity", "Dropout")


def _onnx() -> Any:
    return import_optional("onnx", "onnx", "importing ONNX files")


def load_classifier(path: str | Path) -> OnnxGraph:
    """The model at ``path`` as an fp32 :class:`OnnxGraph`; ModelLoadError if it is not one."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist or is not a file: give an .onnx file")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError, missing external data, ...
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelLoadError(
            f"{path.name} is not a readable ONNX file ({text}): give a model saved by "
            "torch.onnx.export, tf2onnx or onnx.save (with its external data files beside it)"
        ) from exc
    if len(proto.graph.node) == 0:
        raise ModelLoadError(f"{path.name} holds no ONNX graph: give a model file")
    opset = opset_of(proto)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelLoadError(
            f"{path.name} uses opset {opset}; cam-rt imports opsets {MIN_OPSET} to {MAX_OPSET}: "
            "convert it with onnx.version_converter or re-export it with another opset"
        )
    fp16 = to_float32(proto)
    return OnnxGraph(proto, fp16=fp16)


def opset_of(proto: Any) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def to_float32(proto: Any) -> bool:
    """Turn fp16 tensors, casts and I/O of ``proto`` into fp32 in place; True if any were."""
    onnx = _onnx()
    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    changed = False

    def convert_tensor(tensor: Any) -> None:
        nonlocal changed
        if tensor.data_type == f16:
            array = onnx.numpy_helper.to_array(tensor).astype(np.float32)
            tensor.CopyFrom(onnx.numpy_helper.from_array(array, tensor.name))
            changed = True

    graph = proto.graph
    for tensor in graph.initializer:
        convert_tensor(tensor)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                convert_tensor(attr.t)
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == f16:
                attr.i = f32
                changed = True
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == f16:
            value.type.tensor_type.elem_type = f32
            changed = True
    return changed


@dataclass
class OnnxGraph:
    """An fp32 ONNX model with tensor indexes. ``proto`` is modified by the importer."""

    proto: Any
    fp16: bool = False
    producer: dict[str, Any] = field(init=False)
    consumers: dict[str, list[Any]] = field(init=False)
    initializers: dict[str, Any] = field(init=False)
    shapes: dict[str, tuple[int | str | None, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        graph = self.proto.graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.shapes = self._infer_shapes()

    def _infer_shapes(self) -> dict[str, tuple[int | str | None, ...]]:
        onnx = _onnx()
        try:
            inferred = onnx.shape_inference.infer_shapes(self.proto)
        except Exception:  # shape inference is a help, not a requirement
            inferred = self.proto
        graph = inferred.graph
        shapes: dict[str, tuple[int | str | None, ...]] = {}
        for value in [*graph.input, *graph.value_info, *graph.output]:
            tensor_type = value.type.tensor_type
            if not tensor_type.HasField("shape"):
                continue
            shapes[value.name] = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in tensor_type.shape.dim
            )
        return shapes

    @property
    def opset(self) -> int:
        return opset_of(self.proto)

    @property
    def inputs(self) -> list[Any]:
        """The graph inputs that are not initializers (the data inputs)."""
        return [v for v in self.proto.graph.input if v.name not in self.initializers]

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when it is constant (through Identity and Cast), else None."""
        onnx = _onnx()
        seen = 0
        while seen < 8:
            seen += 1
            if name in self.initializers:
                return np.asarray(onnx.numpy_helper.to_array(self.initializers[name]))
            node = self.producer.get(name)
            if node is None:
                return None
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        return np.asarray(onnx.numpy_helper.to_array(attr.t))
                    if attr.name in ("value_float", "value_int"):
                        return np.asarray(attr.f if attr.name == "value_float" else attr.i)
                    if attr.name in ("value_floats", "value_ints"):
                        return np.asarray(
                            list(attr.floats if attr.name == "value_floats" else attr.ints)
                        )
                return None
            if node.op_type not in ("Identity", "Cast"):
                return None
            name = node.input[0]
        return None

    def attrs(self, node: Any) -> dict[str, Any]:
        onnx = _onnx()
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def source(self, name: str) -> tuple[str, Any | None]:
        """Follow ``name`` back through pass-through nodes and float casts: (tensor, producer)."""
        onnx = _onnx()
        node = self.producer.get(name)
        while node is not None and (
            node.op_type in PASS_THROUGH
            or (
                node.op_type == "Cast"
                and self.attrs(node).get("to") in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
            )
        ):
            name = node.input[0]
            node = self.producer.get(name)
        return name, node

    def data_inputs(self, node: Any) -> list[str]:
        """The inputs of ``node`` that are not constants."""
        return [name for name in node.input if name and self.constant(name) is None]

    def nodes(self) -> Iterator[Any]:
        return iter(self.proto.graph.node)

    def tensor_names(self) -> set[str]:
        names = {v.name for v in self.proto.graph.input}
        for node in self.proto.graph.node:
            names.update(node.output)
        return names
