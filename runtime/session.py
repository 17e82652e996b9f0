"""The ONNX Runtime session: the only module of cam-rt that talks to onnxruntime.

A :class:`CamSession` is built once from an exported file and reused; :meth:`CamSession.run` is
safe to call from several threads at once (ONNX Runtime's ``run`` is thread-safe and the session
keeps no per-call state).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .cam import checked_outputs, weight_features
from .errors import (
    ConfigError,
    InputError,
    MissingDependencyError,
    ModelLoadError,
    ProviderError,
)
from .metadata import INPUT_NAME, PREFIX, SCORES_NAME, ModelMetadata, Preprocessing
from .providers import CudaConfig, OpenVINOConfig, ShapeProfile, TensorRTConfig

__all__ = [
    "PROVIDERS",
    "CamSession",
    "PlainModel",
    "ProviderFallbackWarning",
    "SessionConfig",
    "available_providers",
    "resolve_providers",
]

#: Short, case-insensitive provider names and the ONNX Runtime names they stand for.
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")


class ProviderFallbackWarning(UserWarning):
    """An execution provider was asked for but is not available; CPU is used instead."""


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            "onnxruntime", "cpu", "running models (or 'cam-rt[gpu]' for onnxruntime-gpu)"
        ) from exc
    return onnxruntime


def available_providers() -> list[str]:
    """The execution providers the installed onnxruntime offers."""
    return list(_ort().get_available_providers())


def resolve_providers(
    requested: Sequence[str], available: Sequence[str] | None = None
) -> list[str]:
    """ONNX Runtime provider names for ``requested`` short names (or ``auto``).

    ``auto``: TensorRT, then CUDA, then OpenVINO, whichever are available, then CPU. Explicit
    names keep their order; one that is not available is skipped with a
    ProviderFallbackWarning. CPU is always last, as the fallback.
    """
    available = list(available) if available is not None else available_providers()
    if isinstance(requested, str):
        requested = requested.split(",")
    names = [r.strip().lower() for r in requested if r.strip()]
    if not names:
        raise ConfigError("no execution provider given: use auto, cpu, cuda, tensorrt or openvino")
    out: list[str] = []
    for name in names:
        if name == "auto":  # the best available, never warned about
            out.extend(PROVIDERS[n] for n in _AUTO_ORDER if PROVIDERS[n] in available)
            continue
        full = PROVIDERS.get(name)
        if full is None:
            if name in (p.lower() for p in available):
                full = next(p for p in available if p.lower() == name)
            else:
                raise ConfigError(
                    f"execution provider '{name}' is unknown: use auto or one of "
                    f"{', '.join(PROVIDERS)} (installed onnxruntime offers "
                    f"{', '.join(available) or 'none'})"
                )
        if full in available:
            out.append(full)
        else:
            warnings.warn(
                f"execution provider '{name}' ({full}) is not available in this onnxruntime "
                f"(it offers {', '.join(available)}); using CPU instead",
                ProviderFallbackWarning,
                stacklevel=2,
            )
    unique = [p for p in dict.fromkeys(out) if p != "CPUExecutionProvider"]
    return [*unique, "CPUExecutionProvider"]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How to build the ONNX Runtime session (``--device``, threads)."""

    providers: tuple[str, ...] = ("auto",)
    intra_op_threads: int = 0  # 0: ONNX Runtime's default (one per physical core)
    #: Extra or overriding options per provider, keyed by short or ONNX Runtime names.
    provider_options: tuple[tuple[str, dict[str, Any]], ...] = ()
    cuda: CudaConfig = field(default_factory=CudaConfig)
    tensorrt: TensorRTConfig = field(default_factory=TensorRTConfig)
    #: The input range a TensorRT engine is built for (see ``explain.shape_profile``); runs
    #: outside it are refused with a clear error instead of a silent engine rebuild.
    trt_profile: ShapeProfile | None = None
    #: Inputs are bucketed (few shapes): lets CUDA use the exhaustive cuDNN search.
    bucketed: bool = False
    #: Bind inputs/outputs with ONNX Runtime's IO binding: None (auto) on CUDA/TensorRT only.
    io_binding: bool | None = None
    openvino: OpenVINOConfig = field(default_factory=OpenVINOConfig)
    #: A session compiled per input shape (None: auto, with OpenVINO first and bucketed sizes),
    #: the ``max_static_sessions`` most recently used kept open.
    static_shapes: bool | None = None
    max_static_sessions: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.providers, str):  # "cuda" or "cuda,cpu"
            object.__setattr__(self, "providers", tuple(self.providers.split(",")))
        if not self.providers:
            raise ConfigError("providers is empty: use ('auto',) or e.g. ('cuda', 'cpu')")
        threads = self.intra_op_threads
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ConfigError(f"intra_op_threads {threads!r} must be an integer >= 0")
        # Provider options may be keyed by short names ("cuda") or ONNX Runtime names.
        options = tuple((PROVIDERS.get(k.lower(), k), dict(v)) for k, v in self.provider_options)
        object.__setattr__(self, "provider_options", options)
        if not isinstance(self.cuda, CudaConfig) or not isinstance(self.tensorrt, TensorRTConfig):
            raise ConfigError("cuda and tensorrt must be CudaConfig and TensorRTConfig objects")
        if not isinstance(self.openvino, OpenVINOConfig):
            raise ConfigError("openvino must be an OpenVINOConfig object")
        if self.static_shapes not in (None, True, False):
            raise ConfigError(f"static_shapes {self.static_shapes!r} must be None, True or False")
        limit = self.max_static_sessions
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(f"max_static_sessions {limit!r} must be an integer >= 1")
        if self.io_binding not in (None, True, False):
            raise ConfigError(f"io_binding {self.io_binding!r} must be None (auto), True or False")
        if self.cuda.cuda_graphs and not self.bucketed:
            raise ConfigError(
                "CUDA graphs are captured per input shape: use them with size buckets "
                "(--bucket 32), which keep the shapes few"
            )

    def options_for(self, provider: str, input_name: str = INPUT_NAME) -> dict[str, str]:
        """The option dictionary given to ONNX Runtime for ``provider`` (an ORT name)."""
        if provider == PROVIDERS["cuda"]:
            base = self.cuda.ort_options(self.bucketed)
        elif provider == PROVIDERS["tensorrt"]:
            base = self.tensorrt.ort_options(input_name, self.trt_profile)
        elif provider == PROVIDERS["openvino"]:
            base = self.openvino.ort_options()
        else:
            base = {}
        extra = dict(self.provider_options).get(provider, {})
        return {**base, **{k: str(v) for k, v in extra.items()}}


@dataclass(frozen=True)
class PlainModel:
    """Describes an ONNX file not exported by cam-rt: NHWC input, two outputs.

    ``maps_output`` holds ``features`` (N, h, w, K) with ``cam_weights`` (K, L) (an array or a
    ``.npy`` path), or ``cams`` (N, h, w, L). ``preprocessing`` is applied in NumPy before the
    model (cam-rt files have it inside the graph).
    """

    scores_output: str
    maps_output: str
    maps_kind: Literal["features", "cams"] = "features"
    cam_weights: np.ndarray | str | Path | None = field(default=None, compare=False)
    activation: Literal["sigmoid", "softmax"] = "sigmoid"
    class_names: tuple[str, ...] | None = None
    preprocessing: Preprocessing = field(default_factory=lambda: Preprocessing(mode="none"))
    input_name: str | None = None
    output_stride: int = 0  # 0: measured when the session opens

    def __post_init__(self) -> None:
        if self.maps_kind not in ("features", "cams"):
            raise ConfigError(f"maps_kind '{self.maps_kind}' is unknown: use features or cams")
        if self.activation not in ("sigmoid", "softmax"):
            raise ConfigError(f"activation '{self.activation}' is unknown: use sigmoid or softmax")
        if self.output_stride < 0:
            raise ConfigError(f"output_stride {self.output_stride} must be >= 0")


class CamSession:
    """An ONNX Runtime session over a cam-rt file (or a described plain file).

    ``run(batch)`` takes float32 (N, H, W, 3) RGB in 0..255 and returns pre-activation scores
    (N, L) and CAMs (N, h, w, L) at feature resolution (weighted in NumPy for ``features``
    files).
    """

    def __init__(
        self,
        path: str | Path,
        config: SessionConfig | None = None,
        plain: PlainModel | None = None,
    ) -> None:
        self.path = Path(path)
        self.config = config or SessionConfig()
        ort = _ort()
        if not self.path.is_file():
            raise ModelLoadError(f"model file '{path}' does not exist")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Memory patterns are cached per input shape; TTA and mixed image sizes make many shapes,
        # and the cache then grows with the number of distinct images (measured ~25 KB each).
        options.enable_mem_pattern = False
        if self.config.intra_op_threads:
            options.intra_op_num_threads = self.config.intra_op_threads
        providers = resolve_providers(self.config.providers)
        input_name = (plain.input_name if plain is not None else None) or INPUT_NAME
        provider_list = [(p, self.config.options_for(p, input_name)) for p in providers]
        static = self.config.static_shapes
        if static is None:  # OpenVINO with buckets: few shapes, each compiled once
            static = providers[0] == PROVIDERS["openvino"] and self.config.bucketed
        self.providers: list[str]
        if static and providers[0] != PROVIDERS["cpu"]:
            # The base session only describes the model: on the CPU, not compiled by the engine
            # (that would be one more copy of the weights); the per-shape sessions use it.
            self._session = self._open(ort, options, [(PROVIDERS["cpu"], {})], {})
            self.providers = list(providers)
        else:
            self._session = self._open(ort, options, provider_list, {})
            self.providers = list(self._session.get_providers())
        gpu = [p for p in self.providers if p in (PROVIDERS["cuda"], PROVIDERS["tensorrt"])]
        self._device = ("cuda", self.config.cuda.device_id) if gpu else ("cpu", 0)
        binding = self.config.io_binding
        self._io_binding = bool(gpu) if binding is None else binding
        self._profile = self.config.trt_profile if PROVIDERS["tensorrt"] in gpu else None
        self._graphs: _CudaGraphs | None = None
        if self.config.cuda.cuda_graphs and self.providers[0] == PROVIDERS["cuda"]:
            self._graphs = _CudaGraphs(ort, self.config.cuda.device_id, self.config.cuda.max_graphs)
        self._static: _StaticSessions | None = None
        if static:
            shape = self._session.get_inputs()[0].shape
            dims = {i: d for i, d in enumerate(shape) if isinstance(d, str)}
            self._static = _StaticSessions(
                lambda overrides: self._open(ort, options, provider_list, overrides),
                dims,
                self.config.max_static_sessions,
            )
        missing = [p for p in providers if p not in self.providers]
        if missing:
            warnings.warn(
                f"ONNX Runtime could not start {', '.join(missing)} (missing GPU libraries?); "
                f"running on {', '.join(self.providers)}: see 'cam-rt doctor'",
                ProviderFallbackWarning,
                stacklevel=2,
            )
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        self._props = props
        self._numpy_pre: Preprocessing | None = None
        if plain is None:
            self.metadata = ModelMetadata.from_props(props, where=str(self.path))
            self._input = INPUT_NAME
            self._scores = SCORES_NAME
            self._maps = "cams" if self.metadata.output == "cam" else "features"
            self._weights = self.metadata.cam_weights
        else:
            self._init_plain(plain)
        self._check_io()
        self._stride = self.metadata.output_stride or self._measure_stride()

    def _open(self, ort: Any, options: Any, providers: list[Any], overrides: dict[str, int]) -> Any:
        """An ONNX Runtime session; ``overrides`` fix named dynamic dimensions (static shapes)."""
        if overrides:
            fixed = ort.SessionOptions()
            fixed.graph_optimization_level = options.graph_optimization_level
            fixed.log_severity_level = options.log_severity_level
            fixed.enable_mem_pattern = True  # one shape per session: patterns pay here
            fixed.intra_op_num_threads = options.intra_op_num_threads
            for name, value in overrides.items():
                fixed.add_free_dimension_override_by_name(name, value)
            options = fixed
        try:
            return ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "external data" in first.lower():
                raise ModelLoadError(
                    f"{self.path} keeps its weights in a side file that cannot be read ({first})"
                    ": copy the model's NAME.<id>.data file beside it, or export it again"
                ) from exc
            raise ModelLoadError(
                f"{self.path} is not a usable ONNX model ({first}): pass a file written by "
                "'cam-rt export'"
            ) from exc

    def _init_plain(self, plain: PlainModel) -> None:
        inputs = self._session.get_inputs()
        self._input = plain.input_name or inputs[0].name
        self._scores, self._maps = plain.scores_output, plain.maps_output
        weights: np.ndarray | None = None
        if plain.maps_kind == "features":
            if plain.cam_weights is None:
                raise ConfigError(
                    "a plain model with a features output needs cam_weights (K, L): pass the "
                    "classifier kernel as an array or a .npy file"
                )
            raw = plain.cam_weights
            if isinstance(raw, (str, Path)):
                try:
                    raw = np.load(raw, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise ModelLoadError(f"cannot read CAM weights '{raw}': {exc}") from exc
            weights = np.asarray(raw, dtype=np.float32)
            if weights.ndim == 4 and weights.shape[:2] == (1, 1):
                weights = weights[0, 0]
            if weights.ndim != 2:
                raise ModelLoadError(
                    f"CAM weights have shape {weights.shape}; expected (K, L) or (1, 1, K, L)"
                )
        scores_shape = {o.name: o.shape for o in self._session.get_outputs()}.get(self._scores)
        classes = plain.class_names
        if classes is None:
            n = weights.shape[1] if weights is not None else None
            if n is None and scores_shape is not None and isinstance(scores_shape[-1], int):
                n = scores_shape[-1]
            if n is None:
                raise ConfigError("cannot tell the number of classes: pass class_names")
            classes = tuple(f"class_{i}" for i in range(n))
        self._weights = weights
        self._numpy_pre = plain.preprocessing if plain.preprocessing.mode != "none" else None
        self.metadata = ModelMetadata(
            output="features" if plain.maps_kind == "features" else "cam",
            class_names=tuple(classes),
            activation=plain.activation,
            preprocessing=plain.preprocessing,
            output_stride=plain.output_stride,
            feature_layer=self._maps,
            score_layer=self._scores,
            source_sha256="",
            source=f"plain ONNX file {self.path.name}",
            cam_weights=weights,
        )

    def _measure_stride(self) -> int:
        """Input/map size ratio of a plain file, from one run on a 64x64 probe."""
        _, maps = self.run(np.zeros((1, 64, 64, 3), np.float32))
        return max(1, round(64 / int(maps.shape[1])))

    def _check_io(self) -> None:
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        outputs = [o.name for o in self._session.get_outputs()]
        if self._input not in inputs or len(inputs) != 1:
            raise ModelLoadError(
                f"{self.path} has inputs {list(inputs)}; expected one input '{self._input}' "
                "(N, H, W, 3)"
            )
        shape = inputs[self._input]
        if len(shape) != 4 or (isinstance(shape[-1], int) and shape[-1] != 3):
            raise ModelLoadError(
                f"{self.path} input '{self._input}' has shape {shape}; expected (N, H, W, 3) NHWC"
            )
        for name in (self._scores, self._maps):
            if name not in outputs:
                raise ModelLoadError(
                    f"{self.path} has outputs {outputs}; expected '{self._scores}' and "
                    f"'{self._maps}': export it with 'cam-rt export' or name its outputs"
                )
        shapes = {o.name: o.shape for o in self._session.get_outputs()}
        n = self.metadata.num_classes
        static = {"scores": shapes[self._scores][-1]}
        if self._weights is not None:
            static["CAM weights"] = self._weights.shape[1]
            k = shapes[self._maps][-1]
            if isinstance(k, int) and k != self._weights.shape[0]:
                raise ModelLoadError(
                    f"{self.path} output '{self._maps}' has {k} channels but the CAM weights "
                    f"expect {self._weights.shape[0]}"
                )
        else:
            static["maps"] = shapes[self._maps][-1]
        for what, count in static.items():
            if isinstance(count, int) and count != n:
                raise ModelLoadError(
                    f"{self.path}: the {what} have {count} classes but {n} class names were "
                    "given: pass one name per class"
                )

    def _run_bound(self, session: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One run through IO binding: the input is copied to the device once, both outputs
        stay there until read back (with ``cams`` files only (N, h, w, L) crosses the bus)."""
        device, device_id = self._device
        binding = session.io_binding()
        binding.bind_cpu_input(self._input, x)
        binding.bind_output(self._scores, device, device_id)
        binding.bind_output(self._maps, device, device_id)
        session.run_with_iobinding(binding)
        scores, maps = binding.copy_outputs_to_cpu()
        return scores, maps

    @property
    def precision(self) -> str:
        """What arithmetic runs: the file's (fp32, fp16 export, int8 QDQ) or the engine's."""
        first = self.providers[0]
        on_openvino = first == PROVIDERS["openvino"]
        if PREFIX + "quantization" in self._props:
            return "int8 (QDQ file, OpenVINO)" if on_openvino else "int8 (QDQ file)"
        if on_openvino:
            return f"{self.config.openvino.resolved_precision()} (OpenVINO)"
        if first == PROVIDERS["tensorrt"] and self.config.tensorrt.fp16:
            return "fp16 (TensorRT)"
        return "fp16 (file)" if self.metadata.fp16 else "fp32"

    @property
    def static_sessions(self) -> int | None:
        """How many per-shape sessions are open (None: one dynamic-shape session)."""
        return None if self._static is None else len(self._static)

    @property
    def uses_io_binding(self) -> bool:
        return self._io_binding

    @property
    def on_gpu(self) -> bool:
        """True when CUDA or TensorRT runs the model."""
        return self._device[0] == "cuda"

    def describe_inputs(self) -> list[dict[str, Any]]:
        """Name, shape (dims as numbers or names) and type of each model input."""
        return [
            {"name": i.name, "shape": list(i.shape), "type": i.type}
            for i in self._session.get_inputs()
        ]

    def describe_outputs(self) -> list[dict[str, Any]]:
        """Name, shape and type of each model output."""
        return [
            {"name": o.name, "shape": list(o.shape), "type": o.type}
            for o in self._session.get_outputs()
        ]

    @property
    def output_stride(self) -> int:
        """Input/map size ratio (measured on the first run for plain files without one)."""
        return self._stride

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.metadata.class_names

    def run(
        self, batch: np.ndarray, timings: MutableMapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (N, L) and CAMs (N, h, w, L) for a float32 (N, H, W, 3) RGB 0..255 batch.

        ``timings``: if given, seconds are added to ``preprocess`` (NumPy preprocessing of plain
        files), ``onnxruntime`` and ``cam_weighting`` (``features`` files).
        """
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise InputError(f"batch has shape {batch.shape}; expected (N, H, W, 3)")
        clock = time.perf_counter
        start = clock()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self._numpy_pre is not None:
            x = self._numpy_pre.apply(x)
        ready = clock()
        profile = self._profile
        if profile is not None and not profile.contains(*x.shape[:3]):
            n, h, w = x.shape[:3]
            raise InputError(
                f"a batch of {n} input(s) of {h}x{w} pixels is outside the TensorRT profile "
                f"(batch {profile.min[0]}..{profile.max[0]}, {profile.min[1]}x{profile.min[2]} "
                f"to {profile.max[1]}x{profile.max[2]}): widen --min-side/--max-side"
            )
        try:
            session = self._session if self._static is None else self._static.get(x.shape)
            if self._graphs is not None:
                scores, maps = self._graphs.run(session, self._input, (self._scores, self._maps), x)
            elif self._io_binding:
                scores, maps = self._run_bound(session, x)
            else:
                scores, maps = session.run([self._scores, self._maps], {self._input: x})
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProviderError(
                f"ONNX Runtime failed on a batch of shape {batch.shape}: {first}"
            ) from exc
        ran = clock()
        if self._weights is not None:
            maps = weight_features(maps, self._weights)
        if timings is not None:
            for key, seconds in (
                ("preprocess", ready - start),
                ("onnxruntime", ran - ready),
                ("cam_weighting", clock() - ran),
            ):
                timings[key] = timings.get(key, 0.0) + seconds
        n = self.metadata.num_classes
        return checked_outputs(scores, maps, n, str(self.path), f" for its {n} classes")


class _StaticSessions:
    """Sessions compiled for one input shape each, least recently used closed past ``limit``.
    Thread-safe: a shape's session is built once under a lock; runs happen outside it."""

    def __init__(
        self, build: Callable[[dict[str, int]], Any], dims: Mapping[int, str], limit: int
    ) -> None:
        import threading
        from collections import OrderedDict

        self._build = build
        self._dims = dict(dims)  # position -> name of the input's dynamic dims
        self._limit = limit
        self._sessions: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, shape: tuple[int, ...]) -> Any:
        key = tuple(int(v) for v in shape)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                overrides = {name: key[i] for i, name in self._dims.items()}
                session = self._build(overrides)
                self._sessions[key] = session
                while len(self._sessions) > self._limit:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(key)
            return session


class _CudaGraphs:
    """One captured CUDA graph per input shape (ONNX Runtime's ``gpu_graph_id`` run option).

    A graph replays fixed device addresses, so each shape gets its own input and output buffers,
    bound once; a run copies the input into its buffer, replays, and reads the outputs back.
    The first run of a shape goes uncaptured (``gpu_graph_id -1``) to learn the output shapes.
    Past ``limit`` shapes, runs go uncaptured. Runs are serialized (shared buffers).
    """

    def __init__(self, ort: Any, device_id: int, limit: int) -> None:
        import threading

        self._ort = ort
        self._device_id = device_id
        self._limit = limit
        self._entries: dict[tuple[int, ...], tuple[Any, Any, list[Any], Any]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _options(self, graph_id: int) -> Any:
        options = self._ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return options

    def _uncaptured(
        self, session: Any, input_name: str, outputs: tuple[str, str], x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        binding = session.io_binding()
        binding.bind_cpu_input(input_name, x)
        for name in outputs:
            binding.bind_output(name, "cuda", self._device_id)
        session.run_with_iobinding(binding, self._options(-1))
        scores, maps = binding.copy_outputs_to_cpu()
        return scores, maps

    def run(
        self, session: Any, input_name: str, outputs: tuple[str, str], x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(int(v) for v in x.shape)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                scores, maps = self._uncaptured(session, input_name, outputs, x)
                if len(self._entries) >= self._limit:
                    return scores, maps
                value = self._ort.OrtValue.ortvalue_from_shape_and_type
                inp = value(list(key), np.float32, "cuda", self._device_id)
                outs = [
                    value(list(a.shape), np.float32, "cuda", self._device_id)
                    for a in (scores, maps)
                ]
                binding = session.io_binding()
                binding.bind_ortvalue_input(input_name, inp)
                for name, out in zip(outputs, outs, strict=True):
                    binding.bind_ortvalue_output(name, out)
                entry = (binding, inp, outs, self._options(len(self._entries) + 1))
                self._entries[key] = entry
                return scores, maps
            binding, inp, outs, options = entry
            inp.update_inplace(x)
            session.run_with_iobinding(binding, options)
            return outs[0].numpy(), outs[1].numpy()
