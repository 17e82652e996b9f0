"""int8 static quantization of an exported model, with its CAM fidelity measured before writing.

``quantize_model(model, images, out, config)``: ONNX Runtime's static QDQ quantization
(``onnxruntime.quantization.quantize_static``), weights int8 per output channel, activations
uint8, ranges calibrated on real images through the same path as inference: each image decoded,
shrunk to ``max_side`` (see :func:`sized_images`), resized to every input size of the TTA plan
(and flipped), fed raw (the preprocessing is inside the graph); for the entropy and percentile
methods (histograms), all resized to one square size. The CAM head (the model's last Conv,
which gives the class maps) stays in float by default. Then the int8 and the float file explain
the same sized images with the same plan; the maps' agreement (cosine similarity and absolute
difference of the normalized maps, top-1 class agreement) is reported, and the file is written
(atomically) only if the mean cosine similarity reaches the floor, unless forced
(:class:`FidelityError` otherwise).

Needs the ``onnx`` package (``pip install 'cam-rt[quantize]'``); no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..backend.session import CamSession, SessionConfig
from ..batch.io import Temporary, check_output, read_image
from ..errors import ConfigError, FidelityError, InputError, MissingDependencyError
from ..explain import ClassSelection, ExplainConfig, Explainer
from ..maps.tta import InputSize, TTAConfig, plan_passes, resize_input
from ..metadata import INPUT_NAME, PREFIX, ModelMetadata

__all__ = [
    "Fidelity",
    "QuantizeConfig",
    "QuantizeReport",
    "calibration_inputs",
    "map_fidelity",
    "quantize_model",
    "sized_images",
]

Method = Literal["minmax", "entropy", "percentile"]


@dataclass(frozen=True, slots=True)
class QuantizeConfig:
    """``cam-rt quantize`` options: calibration, what stays float, the fidelity floor."""

    tta: TTAConfig | None = field(default_factory=TTAConfig)
    max_images: int = 32
    max_side: int = 512  # images' longer side is shrunk to this first (see sized_images)
    method: Method = "minmax"
    per_channel: bool = True
    keep_head_float: bool = True
    floor: float = 0.99  # minimum mean cosine similarity of the maps
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("max_images", "max_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} {value!r} must be an integer >= 1")
        if self.method not in ("minmax", "entropy", "percentile"):
            raise ConfigError(
                f"calibration method '{self.method}' is unknown: use minmax, entropy or percentile"
            )
        if not 0.0 <= self.floor <= 1.0:
            raise ConfigError(f"fidelity floor {self.floor} must lie in 0..1 (cosine similarity)")


@dataclass(frozen=True, slots=True)
class Fidelity:
    """How close a model's normalized maps are to a reference's on the same images."""

    images: int
    mean_cosine: float
    min_cosine: float
    max_abs: float
    mean_abs: float
    top1_agreement: float

    def line(self) -> str:
        return (
            f"{self.images} images: cosine mean {self.mean_cosine:.4f} (min {self.min_cosine:.4f}),"
            f" max abs {self.max_abs:.3f}, mean abs {self.mean_abs:.4f}, top-1 class agreement "
            f"{self.top1_agreement:.0%}"
        )


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_model` wrote (``path``, the int8 file) and how it compares."""

    path: Path
    fidelity: Fidelity
    float_nodes: tuple[str, ...]
    calibration_inputs: int
    bytes_before: int
    bytes_after: int


def map_fidelity(
    reference: Sequence[np.ndarray],
    other: Sequence[np.ndarray],
    reference_top: Sequence[int] = (),
    other_top: Sequence[int] = (),
) -> Fidelity:
    """Per image: cosine similarity of the flattened maps (both all-zero counts as 1) and the
    absolute differences; then summarized over images."""
    if len(reference) != len(other) or not reference:
        raise ValueError("need the same, non-zero number of maps on both sides")
    cosines, maxima, means = [], [], []
    for a, b in zip(reference, other, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"maps of shapes {a.shape} and {b.shape} cannot be compared")
        x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
        if nx == 0.0 and ny == 0.0:
            cosines.append(1.0)
        else:
            cosines.append(float(x @ y / max(nx * ny, 1e-30)))
        d = np.abs(x - y)
        maxima.append(float(d.max()) if d.size else 0.0)
        means.append(float(d.mean()) if d.size else 0.0)
    agree = 1.0
    if reference_top:
        agree = float(np.mean([a == b for a, b in zip(reference_top, other_top, strict=True)]))
    return Fidelity(
        images=len(reference),
        mean_cosine=float(np.mean(cosines)),
        min_cosine=float(np.min(cosines)),
        max_abs=float(np.max(maxima)),
        mean_abs=float(np.mean(means)),
        top1_agreement=agree,
    )


def _quantization() -> Any:
    try:
        import onnx  # noqa: F401  (onnxruntime.quantization needs it)
        from onnxruntime import quantization
    except ImportError as exc:
        raise MissingDependencyError("onnx", "quantize", "int8 quantization") from exc
    return quantization


def sized_images(
    images: Sequence[np.ndarray], config: QuantizeConfig, metadata: ModelMetadata | None = None
) -> list[np.ndarray]:
    """The images both calibration and the fidelity check use: each shrunk (area averaging) so
    its longer side is at most ``config.max_side``; unchanged when the model records its
    trained size (``--input-size auto`` resizes every image to that size anyway)."""
    import cv2

    if metadata is not None and metadata.input_size is not None:
        return list(images)
    out = []
    for image in images:
        h, w = image.shape[:2]
        scale = config.max_side / max(h, w)
        if scale < 1:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        out.append(image)
    return out


def _tta(config: QuantizeConfig, metadata: ModelMetadata | None) -> TTAConfig | None:
    """The TTA plan both calibration and the fidelity check run: a fixed-size file takes only
    its own size, so its plan keeps the flips at scale 1."""
    if config.tta is not None and metadata is not None and metadata.fixed_size:
        return dataclasses.replace(config.tta, scales=(1.0,))
    return config.tta


def calibration_inputs(
    images: Sequence[np.ndarray], config: QuantizeConfig, metadata: ModelMetadata | None = None
) -> Iterator[np.ndarray]:
    """Model inputs (1, h, w, 3) float32 0..255: each of :func:`sized_images` at each pass of
    the TTA plan, at the sizes ``cam-rt run`` feeds the model (``--input-size auto``: the
    trained size for files that record one; a fixed-size file gets its size only, scale 1)."""
    tta = _tta(config, metadata)
    mode = tta.mode if tta is not None else None
    passes = list(dict.fromkeys(plan_passes(tta)))
    sizing = InputSize()
    for image in sized_images(images, config, metadata):
        target = sizing.target(image.shape[0], image.shape[1], metadata)
        for p in passes:
            yield resize_input(image, p, mode, target=target)[None]


def one_shape(batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inputs resized to one square shape (the median side): ONNX Runtime's histogram
    calibration (entropy, percentile) stacks every input's activations, so they must agree."""
    import cv2

    side = int(np.median([max(b.shape[1:3]) for b in batches]))
    return [
        b
        if b.shape[1:3] == (side, side)
        else cv2.resize(b[0], (side, side), interpolation=cv2.INTER_LINEAR)[None]
        for b in batches
    ]


def _last_conv(model: Any) -> list[str]:
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    return [convs[-1].name] if convs else []


def quantize_model(
    model: str | Path,
    images: Sequence[np.ndarray],
    output: str | Path,
    config: QuantizeConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> QuantizeReport:
    """Quantize ``model`` (a cam-rt file) to int8 QDQ, calibrated on ``images`` (RGB uint8);
    write ``output`` only if the maps keep ``config.floor`` mean cosine similarity."""
    config = config or QuantizeConfig()
    say = log or (lambda _text: None)
    source, out = Path(model), Path(output)
    if not images:
        raise ConfigError("no calibration images: give a folder of images like the ones to run")
    if out.resolve() == source.resolve():
        raise ConfigError("the output would overwrite the input model: give another -o path")
    if out.is_dir():
        raise ConfigError(f"output {out} is a folder: give a file name such as model.int8.onnx")
    target = check_output(out)  # a FIFO, socket or device is refused before any work
    float_session = CamSession(source, SessionConfig(providers=("cpu",)))
    if float_session.metadata.fp16:
        raise ConfigError(f"{source} is an fp16 export: quantize the fp32 file instead")
    q = _quantization()
    import onnx

    proto = onnx.load(str(source))
    props = {p.key: p.value for p in proto.metadata_props}
    props.pop(PREFIX + "external_data", None)  # the int8 file holds its weights itself
    exclude = _last_conv(proto) if config.keep_head_float else []
    del proto
    images = list(images[: config.max_images])
    batches = list(calibration_inputs(images, config, float_session.metadata))
    if config.method != "minmax":
        batches = one_shape(batches)
    say(f"calibrating on {len(images)} images ({len(batches)} inputs, {config.method})")

    class Reader(q.CalibrationDataReader):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {INPUT_NAME: item}

    methods = {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    with Temporary(target.parent) as staging:  # removed unless published
        tmp = staging.path
        q.quantize_static(
            str(source),
            str(tmp),
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            per_channel=config.per_channel,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=methods[config.method],
            calibration_providers=["CPUExecutionProvider"],
        )
        quantized = onnx.load(str(tmp))
        report_meta = {
            "format": "QDQ int8 (weights int8 per-channel, activations uint8)",
            "calibration_images": len(images),
            "calibration_inputs": len(batches),
            "method": config.method,
            "float_nodes": exclude,
        }
        del quantized.metadata_props[:]
        onnx.helper.set_model_props(
            quantized, {**props, PREFIX + "quantization": json.dumps(report_meta)}
        )
        onnx.save(quantized, str(tmp))
        del quantized
        fidelity = _fidelity(float_session, tmp, images, config)
        say("fidelity vs float: " + fidelity.line())
        ok = fidelity.mean_cosine >= config.floor
        if not ok and not config.force:
            raise FidelityError(
                f"the int8 maps fall below the fidelity floor (mean cosine "
                f"{fidelity.mean_cosine:.4f} < {config.floor}); nothing was written: calibrate "
                "on more or more typical images, keep the head in float, lower --floor, or "
                "--force to write it anyway"
            )
        staging.publish(target)
    say(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return QuantizeReport(
        path=out,
        fidelity=fidelity,
        float_nodes=tuple(exclude),
        calibration_inputs=len(batches),
        bytes_before=source.stat().st_size,
        bytes_after=out.stat().st_size,
    )


def _fidelity(
    float_session: CamSession, path: Path, images: Sequence[np.ndarray], config: QuantizeConfig
) -> Fidelity:
    """Maps of the top class (chosen by the float model) on both models, with the TTA plan and
    the image sizes of calibration (:func:`sized_images`, :func:`_tta`)."""
    meta = float_session.metadata
    images = sized_images(images, config, meta)
    explain = ExplainConfig(tta=_tta(config, meta), classes=ClassSelection("top-k", k=1))
    reference = Explainer(float_session, explain).explain(images)
    ids = [r.class_ids for r in reference]
    int8 = Explainer(CamSession(path, SessionConfig(providers=("cpu",))), explain)
    other = [int8.explain(img, labels=[list(i)])[0] for img, i in zip(images, ids, strict=True)]
    other_top = [int(np.argmax(r.scores)) for r in other]
    return map_fidelity(
        [r.maps for r in reference],
        [r.maps for r in other],
        [i[0] for i in ids],
        other_top,
    )


def load_calibration(
    folder: Path, limit: int, log: Callable[[str], None] | None = None
) -> list[np.ndarray]:
    """Up to ``limit`` images of ``folder`` (recursive, sorted), decoded to RGB. An image that
    cannot be read is skipped (``log`` gets a line naming it and why) and the next one taken;
    ConfigError if none can be read."""
    from ..batch.inputs import discover_inputs

    say = log or (lambda _text: None)
    images: list[np.ndarray] = []
    failed: list[str] = []
    for item in discover_inputs([str(folder)]):
        if len(images) >= limit:
            break
        try:
            images.append(read_image(item.path).pixels)
        except InputError as exc:
            failed.append(str(exc))
            say(f"skipped a calibration image: {exc}")
        except MemoryError:
            failed.append(f"{item.path}: not enough memory to decode it")
            say(f"skipped a calibration image: {failed[-1]}")
    if not images:
        raise ConfigError(
            f"no calibration image in {folder} could be read ({len(failed)} tried, first: "
            f"{failed[0]}): give a folder of readable images"
        )
    return images


def report_dict(report: QuantizeReport) -> dict[str, Any]:
    out = asdict(report)
    out["path"] = str(report.path)
    return out
