"""``export_model``: a Keras classifier to a checked, optimized ONNX file, written atomically."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cam_rt.runtime._version import __version__
from cam_rt.runtime.classes import duplicate_names, resolve_class_names
from cam_rt.runtime.errors import ConfigError, ExportError
from cam_rt.runtime.metadata import ModelMetadata, Preprocessing

from ._deps import import_keras, import_optional, import_tensorflow, import_tf_keras
from .config import DEFAULT_CHECK_SIZES, ExportConfig
from .convert import convert_body
from .head import reference_cams, reference_scores
from .preprocess import preprocessing_for
from .rebuild import ExportPlan, plan_export
from .sources import BUILTINS, load_source
from .verify import Parity, check_parity
from .write import check_output_path, op_counts, to_fp16, write_checked

__all__ = ["ExportReport", "export_model"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how well it matched Keras."""

    path: Path
    metadata: ModelMetadata
    parity: tuple[Parity, ...]
    seconds: float
    size_bytes: int
    op_counts: dict[str, int]

    @property
    def max_rel_error(self) -> float:
        """The largest relative error of all rows (the check itself lets rows pass whose max
        abs error is at most ``ABS_FLOOR``: float32 noise on values near zero)."""
        return max(p.rel_error for p in self.parity)

    @property
    def max_abs_error(self) -> float:
        return max(p.max_abs_error for p in self.parity)


def _reference(
    plan: ExportPlan, pre: Preprocessing, output: str, original: Any, score_layer: str | None
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Keras (unpatched layers) + the head's NumPy reference: what the file must reproduce.

    ``keras`` is the model's own output (the scores, or their sigmoid/softmax), from the user's
    original model at the trained size and from the replayed one at other sizes.
    """
    spec = plan.exposed.head

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        x = pre.apply(images)
        try:
            outs = plan.checker(x, training=False)
            features, check = (np.asarray(t, np.float32) for t in outs)
            if plan.input_size == images.shape[1:3] and score_layer is None:
                check = np.asarray(original(x, training=False), np.float32)
        except Exception as exc:  # TensorFlow's errors: one line, and what to do
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ExportError(
                f"Keras cannot run the model at {x.shape[1]}x{x.shape[2]} ({text}): pass "
                "--check-sizes with sizes it accepts"
            ) from exc
        result = {"scores": reference_scores(spec, features), "keras": check}
        if output == "features":
            result["features"] = features
        else:
            result["cams"] = reference_cams(spec, features)
        return result

    return run


def _derive(
    plan: ExportPlan, activation: str
) -> dict[str, Callable[[dict[str, np.ndarray], np.ndarray], tuple[np.ndarray, np.ndarray, float]]]:
    """The file's scores vs the model's own output (row ``keras``), on the logit scale.

    Probabilities are turned back into logits where they are not saturated (sigmoid: 1e-3 <
    p < 1 - 1e-3; softmax: p > 1e-3, centred per image, as softmax logits are defined up to a
    constant), and the relative error divides by the range of all the scores: an error in
    the scores is judged at the scale of the scores, as in the ``scores`` row.
    """

    def keras_side(
        outputs: dict[str, np.ndarray], ref: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        scores = outputs["scores"].astype(np.float64)
        span = float(scores.max() - scores.min()) if scores.size else 0.0
        if not plan.exposed.check_is_probability:
            return scores, ref, span
        p = ref.astype(np.float64)
        if activation == "sigmoid":
            valid = (p > 1e-3) & (p < 1 - 1e-3)
            q = np.where(valid, p, 0.5)
            return scores[valid], (np.log(q) - np.log1p(-q))[valid], span
        valid = p > 1e-3
        logp = np.log(np.where(valid, p, 1.0))
        count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
        got = scores - (scores * valid).sum(axis=1, keepdims=True) / count
        want = logp - (logp * valid).sum(axis=1, keepdims=True) / count
        return got[valid], want[valid], span

    return {"keras": keras_side}


def _producer(flavour: str) -> dict[str, str]:
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    versions = {"cam_rt": __version__, "tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__}
    versions["onnxruntime"] = onnxruntime.__version__
    module = import_keras() if flavour == "keras" else import_tf_keras()
    versions["keras" if flavour == "keras" else "tf_keras"] = module.__version__
    return versions


def export_model(
    source: Any,
    output_path: str | Path,
    config: ExportConfig | None = None,
    log: Log | None = None,
) -> ExportReport:
    """Export ``source`` to ``output_path`` and check it against Keras.

    ``source`` is a ``.keras`` file, a whole-model ``.h5`` (Keras 3 or Keras 2/tf_keras), a
    Keras-2 SavedModel folder, an in-memory ``keras.Model`` (Keras 3 or tf_keras), or a
    built-in name (``resnet38d``, with ``config.weights`` a weights ``.h5`` or ``none``).
    The file is written only if ONNX Runtime matches Keras within the tolerance at every
    ``config.check_sizes``; otherwise ExportError is raised and nothing is left behind.
    ``log`` receives progress lines (the library itself never prints).
    """
    config = config or ExportConfig()
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    out = check_output_path(
        Path(output_path), Path(source) if isinstance(source, (str, Path)) else None
    )
    import_tensorflow()  # fail first, and clearly, where the export extra is not installed
    import_optional("onnx", "onnx", "writing ONNX files")

    builtin_defaults = (
        BUILTINS.get(str(source).lower(), {}) if isinstance(source, (str, Path)) else {}
    )
    class_spec = config.classes or builtin_defaults.get("classes")
    class_names = resolve_class_names(class_spec) if class_spec else None
    loaded = load_source(source, config.weights, len(class_names) if class_names else None)
    say(f"loaded {loaded.description} ({loaded.flavour})")
    keras_module = import_keras() if loaded.flavour == "keras" else import_tf_keras()
    plan = plan_export(
        loaded.model,
        keras_module,
        config.feature_layer,
        config.score_layer,
        config.check_sizes,
        DEFAULT_CHECK_SIZES,
    )
    exposed, spec = plan.exposed, plan.exposed.head
    size_text = (
        "any input size"
        if plan.input_size is None
        else (
            f"trained at {plan.input_size[0]}x{plan.input_size[1]}, "
            + (
                f"exported at that size only ({plan.why_fixed})"
                if plan.fixed
                else "exported for any size"
            )
        )
    )
    say(
        f"features '{exposed.feature_layer}' ({spec.feature_shape[2]} channels), scores "
        f"'{exposed.score_layer}', head {spec.reduce} + {len(spec.layers)} layers: "
        f"{spec.method}; {size_text}"
    )
    if class_names is None:
        class_names = tuple(f"class_{i}" for i in range(spec.num_classes))
    elif len(class_names) != spec.num_classes:
        raise ConfigError(
            f"{len(class_names)} class names were given ({class_spec}) but the model has "
            f"{spec.num_classes} classes: pass --classes with {spec.num_classes} names"
        )
    repeated = duplicate_names(class_names)
    if repeated:
        say(f"warning: class names repeat ({', '.join(repeated[:5])}): select those classes by id")
    activation = config.activation or exposed.activation
    if activation is None:
        raise ConfigError(
            "cannot tell the score activation from the model (its outputs are linear): pass "
            "--activation sigmoid (multi-label) or softmax (single-label)"
        )
    if config.output == "features" and spec.method != "cam":
        raise ConfigError(
            "--output features needs a linear head (GAP -> Dense); this head is non-linear and "
            "its maps are Grad-CAM: use --output cam"
        )
    pre = config.preprocessing or preprocessing_for(
        config.preprocess or builtin_defaults.get("preprocess", "none")
    )

    t0 = time.perf_counter()
    proto = convert_body(
        plan.body,
        spec,
        loaded.flavour,
        pre,
        config.output,
        config.opset,
        plan.input_size if plan.fixed else None,
    )
    nodes = len(proto.graph.node)
    say(f"converted and optimized in {time.perf_counter() - t0:.1f} s ({nodes} nodes)")
    if config.fp16:
        proto = to_fp16(proto)

    metadata = ModelMetadata(
        output=config.output,
        class_names=tuple(class_names),
        activation=activation,
        preprocessing=pre,
        output_stride=plan.output_stride,
        feature_layer=exposed.feature_layer,
        score_layer=exposed.score_layer,
        source_sha256=loaded.sha256,
        source=loaded.description,
        fp16=config.fp16,
        cam_weights=spec.collapsed()[0] if config.output == "features" else None,
        producer=_producer(loaded.flavour),
        # A new name per export: the file a previous model at ``out`` uses stays intact until
        # the new model has replaced it.
        external_data=f"{out.name}.{secrets.token_hex(4)}.data" if config.external_data else "",
        input_size=plan.input_size,
        fixed_size=plan.fixed,
        method=spec.method,
    )
    counts = op_counts(proto)

    reference = _reference(plan, pre, config.output, loaded.model, config.score_layer)
    derive = _derive(plan, activation)

    def check(tmp: Path) -> list[Parity]:
        return check_parity(tmp, reference, plan.check_sizes, config.effective_tolerance, derive)

    rows, size = write_checked(proto, metadata, out, check, say)
    seconds = time.perf_counter() - start
    where = f" + {metadata.external_data}" if metadata.external_data else ""
    say(f"wrote {out}{where} ({size / 2**20:.1f} MiB) in {seconds:.1f} s")
    return ExportReport(out, metadata, tuple(rows), seconds, size, counts)
