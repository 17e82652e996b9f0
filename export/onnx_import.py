"""``import_onnx``: a classifier ONNX file made elsewhere to a checked cam-rt model.

The head is found by graph analysis (:mod:`cam_rt.export.onnx_heads`) and written back with
the Keras importer's writer (:func:`~cam_rt.export.onnx_head.append_head`), so the file has
the same inputs, outputs and metadata as a Keras export:

- input ``images`` (N, H, W, 3) float32 RGB 0..255; in the graph: ``--bgr`` (a channel
  swap), ``(x - mean) / std`` and, for NCHW models, the transpose to (N, 3, H, W);
- outputs ``scores`` (the logits, before the model's softmax/sigmoid, recorded as the
  activation) and ``cams`` (N, h, w, L): the head's weights as a 1x1 conv on the features
  (CAM), or the closed-form Grad-CAM for non-linear heads; the rest of the original head is
  removed from the graph.

Sizes: the spatial dims become dynamic when the model runs at other sizes (checked with
ONNX Runtime); otherwise the file keeps the model's size (``fixed_size``). Either way the
model's own size is recorded as its trained input size.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cam_rt.runtime._version import __version__
from cam_rt.runtime.classes import duplicate_names, resolve_class_names
from cam_rt.runtime.errors import ConfigError, ExportError
from cam_rt.runtime.metadata import INPUT_NAME, ModelMetadata, Preprocessing

from ._deps import import_optional
from .api import ExportReport
from .config import DEFAULT_CHECK_SIZES, FP16_TOLERANCE, ExportConfig
from .head import activation_numpy, reference_cams
from .onnx_graph import OnnxGraph, load_classifier
from .onnx_head import append_head
from .onnx_heads import FoundHead, find_head, input_layout
from .preprocess import preprocessing_for
from .sources import sha256_file
from .verify import Parity, check_parity
from .write import check_output_path, op_counts, to_fp16, write_checked

__all__ = ["import_onnx"]

Log = Callable[[str], None]


def import_onnx(
    source: str | Path,
    output_path: str | Path,
    config: ExportConfig | None = None,
    log: Log | None = None,
) -> ExportReport:
    """Turn the classifier at ``source`` (.onnx) into a cam-rt model at ``output_path``.

    The new file's scores must match the original's logits, and its maps a NumPy CAM of the
    original's own feature tensor, on random images at the model's size (and at two more
    sizes when the file is dynamic); otherwise ExportError and nothing is written.
    """
    config = config or ExportConfig()
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    import_optional("onnx", "onnx", "importing ONNX files", extra="export")
    source = Path(source)
    out = check_output_path(Path(output_path), source)
    graph = load_classifier(source)
    head = find_head(graph, config.feature_node)
    layout = input_layout(graph)
    trained = _static_size(graph, layout)
    say(
        f"loaded {source.name} (opset {graph.opset}{', fp16' if graph.fp16 else ''}, {layout}); "
        f"head: {head.describe()}: {head.spec.method}"
    )
    class_names = _class_names(config, head, say)
    activation = config.activation or head.activation
    if activation is None:
        raise ConfigError(
            "the model's output has no softmax or sigmoid, so its activation is unknown: pass "
            "--activation sigmoid (multi-label) or softmax (single-label)"
        )
    if config.output == "features" and head.spec.method != "cam":
        raise ConfigError(
            "--output features needs a linear head (pooling -> Gemm); this head is non-linear "
            "and its maps are Grad-CAM: use --output cam"
        )
    pre = config.preprocessing or preprocessing_for(config.preprocess or "none")

    base = _rewrite(graph, head, layout, pre, config.output)
    fixed, probe_sizes = _plan_sizes(base, trained, say)
    _set_input(base, fixed, trained)
    stride = _stride(base, trained or (224, 224))
    if config.fp16:
        base = to_fp16(base)

    metadata = ModelMetadata(
        output=config.output,
        class_names=class_names,
        activation=activation,
        preprocessing=pre,
        output_stride=stride,
        feature_layer=head.features,
        score_layer=head.logits,
        source_sha256=sha256_file(source),
        source=source.name,
        fp16=config.fp16,
        cam_weights=head.spec.collapsed()[0] if config.output == "features" else None,
        producer=_producer(graph),
        external_data=f"{out.name}.{secrets.token_hex(4)}.data" if config.external_data else "",
        input_size=trained,
        fixed_size=fixed,
        method=head.spec.method,
    )
    counts = op_counts(base)
    reference = _reference(source, graph.fp16, head, layout, pre, config.output)
    tolerance = config.tolerance or (
        FP16_TOLERANCE if graph.fp16 or config.fp16 else config.effective_tolerance
    )
    derive = _derive(head)

    def check(tmp: Path) -> list[Parity]:
        return check_parity(tmp, reference, probe_sizes, tolerance, derive, against="the original")

    rows, size = write_checked(base, metadata, out, check, say)
    seconds = time.perf_counter() - start
    say(f"wrote {out} ({size / 2**20:.1f} MiB) in {seconds:.1f} s")
    return ExportReport(out, metadata, tuple(rows), seconds, size, counts)


def _static_size(graph: OnnxGraph, layout: str) -> tuple[int, int] | None:
    dims = [
        d.dim_value if d.HasField("dim_value") else 0
        for d in graph.inputs[0].type.tensor_type.shape.dim
    ]
    h, w = (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])
    return (h, w) if h > 0 and w > 0 else None


def _class_names(config: ExportConfig, head: FoundHead, say: Log) -> tuple[str, ...]:
    count = head.spec.num_classes
    if config.classes is None:
        return tuple(f"class_{i}" for i in range(count))
    names = resolve_class_names(config.classes)
    if len(names) != count:
        raise ConfigError(
            f"{len(names)} class names were given ({config.classes}) but the model has {count} "
            f"classes: pass --classes with {count} names"
        )
    repeated = duplicate_names(names)
    if repeated:
        say(f"warning: class names repeat ({', '.join(repeated[:5])}): select those classes by id")
    return tuple(names)


def _rewrite(
    graph: OnnxGraph, head: FoundHead, layout: str, pre: Preprocessing, output_kind: str
) -> Any:
    """A copy of the model: images NHWC 0..255 -> preprocessing -> body -> features -> head."""
    onnx = import_optional("onnx", "onnx", "importing ONNX files")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    proto = onnx.ModelProto()
    proto.CopyFrom(graph.proto)
    g = proto.graph
    original = graph.inputs[0].name
    prelude: list[Any] = []
    x = INPUT_NAME

    def const(name: str, value: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(value, f"cam_rt_in/const_{name}"))
        return f"cam_rt_in/const_{name}"

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        prelude.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    if pre.channel_order == "BGR":
        x = node(
            "Gather", [x, const("bgr", np.array([2, 1, 0], np.int64))], "cam_rt_in/bgr", axis=3
        )
    if pre.scale != 1.0:
        x = node("Mul", [x, const("scale", np.float32(pre.scale))], "cam_rt_in/scaled")
    if any(pre.mean):
        x = node("Sub", [x, const("mean", np.asarray(pre.mean, np.float32))], "cam_rt_in/centred")
    if any(s != 1.0 for s in pre.std):
        x = node("Div", [x, const("std", np.asarray(pre.std, np.float32))], "cam_rt_in/scaled_std")
    if layout == "NCHW":
        x = node("Transpose", [x], "cam_rt_in/nchw", perm=[0, 3, 1, 2])
    prelude.append(helper.make_node("Identity", [x], [original], name="cam_rt_in/model_input"))
    nodes = list(g.node)
    _free_batch(graph, nodes, g)
    del g.node[:]
    g.node.extend(prelude + nodes)
    kept_inputs = [v for v in g.input if v.name != original]
    del g.input[:]
    g.input.extend(
        [
            helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None] * 4),
            *kept_inputs,
        ]
    )
    features = head.features
    if head.layout == "NCHW":
        transposed = helper.make_node(
            "Transpose", [features], ["cam_rt/features_nhwc"], perm=[0, 2, 3, 1], name="nhwc"
        )
        g.node.append(transposed)
        features = "cam_rt/features_nhwc"
    append_head(proto, features, head.spec, output_kind, graph.opset)
    _prune(proto)
    del g.value_info[:]
    return proto


def _free_batch(graph: OnnxGraph, nodes: list[Any], g: Any) -> None:
    """Reshapes to a constant shape that starts with a fixed batch (torch exports with batch
    1: ``x.view(1, C, 1, 1)``) take the batch from their input instead (0 in ``shape``)."""
    onnx = import_optional("onnx", "onnx", "importing ONNX files")
    dims = graph.inputs[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else 0
    if batch < 1:
        return
    for node in nodes:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        shape = graph.constant(node.input[1])
        if shape is None or shape.ndim != 1 or len(shape) < 2 or int(shape[0]) != batch:
            continue
        if graph.attrs(node).get("allowzero", 0):
            continue
        freed = shape.astype(np.int64).copy()
        freed[0] = 0
        name = f"cam_rt_in/batch_free_{len(g.initializer)}"
        g.initializer.append(onnx.numpy_helper.from_array(freed, name))
        node.input[1] = name


def _prune(proto: Any) -> None:
    """Drop the nodes and initializers the outputs no longer need (the original head)."""
    g = proto.graph
    needed = {o.name for o in g.output}
    kept: list[Any] = []
    for node in reversed(list(g.node)):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
            for attr in node.attribute:  # subgraphs (If/Loop) read outer names
                for sub in [attr.g, *attr.graphs]:
                    for inner in sub.node:
                        needed.update(inner.input)
    del g.node[:]
    g.node.extend(reversed(kept))
    inits = [t for t in g.initializer if t.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    inputs = [v for v in g.input if v.name in needed or v.name == INPUT_NAME]
    del g.input[:]
    g.input.extend(inputs)


def _set_input(proto: Any, fixed: bool, size: tuple[int, int] | None) -> None:
    onnx = import_optional("onnx", "onnx", "importing ONNX files")
    dims: list[Any] = ["batch", "height", "width", 3]
    if fixed and size is not None:
        dims = ["batch", size[0], size[1], 3]
    value = onnx.helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, dims)
    proto.graph.input[0].CopyFrom(value)


def _session(proto: Any) -> Any:
    ort = import_optional("onnxruntime", "onnxruntime", "checking the import", extra="cpu")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _plan_sizes(
    proto: Any, trained: tuple[int, int] | None, say: Log
) -> tuple[bool, tuple[tuple[int, int], ...]]:
    """(fixed, check sizes): dynamic when the rewritten graph runs at two other sizes."""
    if trained is None:
        return False, ((224, 224), *DEFAULT_CHECK_SIZES)
    h, w = trained
    others = (((h + h // 4) | 1, (w + w // 2) | 1), (max(h * 3 // 4, 32), max(w * 5 // 4, 32)))
    _set_input(proto, False, None)
    try:
        session = _session(proto)
        for size in others:
            images = np.zeros((1, *size, 3), np.float32)
            session.run(None, {INPUT_NAME: images})
    except Exception as exc:  # ONNX Runtime's errors: the graph needs its size
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        say(f"the model runs only at {h}x{w} ({text}): the file keeps that size")
        return True, (trained, trained)
    return False, (trained, *others)


def _stride(proto: Any, size: tuple[int, int]) -> int:
    try:
        outputs = _session(proto).run(None, {INPUT_NAME: np.zeros((1, *size, 3), np.float32)})
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ExportError(f"ONNX Runtime cannot run the rewritten model ({text})") from exc
    maps = outputs[1]
    return max(1, round(size[0] / max(int(maps.shape[1]), 1)))


def _reference(
    source: Path,
    fp16: bool,
    head: FoundHead,
    layout: str,
    pre: Preprocessing,
    output_kind: str,
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The original model, with its logits and features as extra outputs (a copy with its
    batch and spatial dims freed for inputs of other shapes), and the head's NumPy CAM."""
    onnx = import_optional("onnx", "onnx", "importing ONNX files")
    proto = onnx.load(str(source))
    elem = onnx.TensorProto.FLOAT16 if fp16 else onnx.TensorProto.FLOAT
    g = proto.graph
    extra = [head.logits, head.features]
    existing = {o.name for o in g.output}
    g.output.extend(
        onnx.helper.make_tensor_value_info(name, elem, None)
        for name in extra
        if name not in existing
    )
    input_name = next(v.name for v in g.input if v.name not in {t.name for t in g.initializer})
    fixed_session = _session(proto)
    free = onnx.ModelProto()
    free.CopyFrom(proto)
    _free_batch(OnnxGraph(free), list(free.graph.node), free.graph)
    dims = free.graph.input[0].type.tensor_type.shape.dim
    static = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    for index in (0, 2, 3) if layout == "NCHW" else (0, 1, 2):  # batch, height, width
        dims[index].Clear()
        dims[index].dim_param = f"free_{index}"
    del free.graph.value_info[:]
    sessions: dict[bool, Any] = {True: fixed_session}
    names = [o.name for o in g.output]

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        x = pre.apply(images)
        if layout == "NCHW":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        own = all(want in (0, got) for want, got in zip(static, x.shape, strict=True))
        if own not in sessions:
            sessions[own] = _session(free)
        feed = x.astype(np.float16) if fp16 else x
        values = dict(zip(names, sessions[own].run(names, {input_name: feed}), strict=True))
        features = values[head.features].astype(np.float32)
        if head.layout == "NCHW":
            features = features.transpose(0, 2, 3, 1)
        result = {
            "scores": values[head.logits].astype(np.float32).reshape(len(images), -1),
            "original": values[head.output].astype(np.float32).reshape(len(images), -1),
        }
        if output_kind == "features":
            result["features"] = features
        else:
            result["cams"] = reference_cams(head.spec, features)
        return result

    return run


def _derive(
    head: FoundHead,
) -> dict[str, Callable[[dict[str, np.ndarray], np.ndarray], tuple[np.ndarray, np.ndarray, float]]]:
    """Row ``original``: the file's scores through the model's own activation vs its output."""
    final = head.final_op
    if final is None:
        return {}  # the output is the logits: the ``scores`` row compares them

    def side(
        outputs: dict[str, np.ndarray], ref: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        name = "sigmoid" if final == "Sigmoid" else "softmax"
        probs = activation_numpy(name, outputs["scores"].astype(np.float64))
        if final == "LogSoftmax":
            probs = np.log(np.maximum(probs, 1e-300))
            return probs, ref.astype(np.float64), float(ref.max() - ref.min()) or 1.0
        return probs, ref.astype(np.float64), 1.0

    return {"original": side}


def _producer(graph: OnnxGraph) -> dict[str, str]:
    import onnx
    import onnxruntime

    made_by = f"{graph.proto.producer_name} {graph.proto.producer_version}".strip()
    return {
        "cam_rt": __version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "source_producer": made_by or "unknown",
    }
