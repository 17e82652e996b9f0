"""The local ONNX Runtime session over a model file: :class:`SessionConfig`, :class:`CamSession`.

A :class:`CamSession` is built once from an exported file (or a plain file described by a
:class:`~cam_rt.runtime.backend.plain.PlainModel`) and reused; :meth:`CamSession.run` is safe
to call from several threads at once (ONNX Runtime's ``run`` is thread-safe and the session
keeps no per-call state).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError, ModelLoadError, ProviderError
from ..metadata import INPUT_NAME, PREFIX
from .choice import choice_config, decide, measures, plan_choice, static_overrides
from .layout import ModelLayout, check_layout, metadata_layout
from .ort import (
    PROVIDERS,
    ProviderFallbackWarning,
    first_line,
    onnxruntime,
    open_session,
    raised_by_onnxruntime,
    resolve_providers,
    session_options,
)
from .outputs import cam_outputs
from .plain import PlainModel, plain_layout
from .precision import CHOICE_CACHE_MODES, Candidate, ChoiceCacheMode, ChoiceNotice, Decision
from .providers import CudaConfig, OpenVINOConfig, ShapeProfile, TensorRTConfig
from .shapes import CudaGraphs, StaticSessions, run_bound

__all__ = ["CamSession", "SessionConfig"]

_GPU = (PROVIDERS["tensorrt"], PROVIDERS["cuda"])
_CPU = PROVIDERS["cpu"]


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
    #: ``--device auto`` / ``--precision auto`` on the CPU: reuse a cached choice (``use``),
    #: measure again and store it (``refresh``), or measure and store nothing (``off``).
    choice_cache: ChoiceCacheMode = "use"

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
        if self.choice_cache not in CHOICE_CACHE_MODES:
            raise ConfigError(
                f"choice cache '{self.choice_cache}' is unknown: use use, refresh or off"
            )
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

    def binding_device(self, providers: Sequence[str]) -> tuple[str, int]:
        """Where IO binding keeps outputs for a session running on ``providers`` (ORT names):
        the GPU of the first of TensorRT and CUDA (its ``device_id``, as configured or set in
        ``provider_options``), else ``("cpu", 0)``."""
        gpu = next((p for p in providers if p in _GPU), None)
        if gpu is None:
            return ("cpu", 0)
        text = self.options_for(gpu).get("device_id", "0")
        if not text.isdigit():
            raise ConfigError(
                f"provider option device_id {text!r} of {gpu} must be an integer >= 0"
            )
        return ("cuda", int(text))


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
        self.config = config = config or SessionConfig()
        ort = onnxruntime()
        if not self.path.is_file():
            raise ModelLoadError(f"model file '{path}' does not exist")
        self._ort, self._options = ort, session_options(ort, config.intra_op_threads)
        self._input_name = (plain.input_name if plain is not None else None) or INPUT_NAME
        requested = resolve_providers(config.providers)
        self._lock = threading.Lock()
        self._probing = False
        self._pending: list[Candidate] | None = None
        self._key: dict[str, Any] = {}
        self.choice: Decision | None = None  # what --device/--precision auto chose, and why
        self._base: Any = None
        self._session: Any = None
        self.providers: list[str] = list(requested)
        self._run_config = config
        self._device: tuple[str, int] = ("cpu", 0)
        self._io_binding = False
        self._profile: ShapeProfile | None = None
        self._graphs: CudaGraphs | None = None
        self._static: StaticSessions | None = None
        if measures(config, requested):  # described on the CPU until the choice is made
            self._base = self._session = open_session(
                ort, self.path, self._options, [(_CPU, {})], {}
            )
        else:
            self._open_engine(requested, config, {})
        self._props = dict(self._session.get_modelmeta().custom_metadata_map)
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        self._layout: ModelLayout = (
            metadata_layout(self._props, self.path)
            if plain is None
            else plain_layout(plain, inputs, outputs, self.path)
        )
        declared = [*self._session.get_inputs(), *self._session.get_outputs()]
        check_layout(self._layout, inputs, outputs, self.path, {a.name: a.type for a in declared})
        self.metadata = self._layout.metadata
        if self._base is not None:
            self._plan_choice()
        self._stride = self.metadata.output_stride or self._measure_stride()

    def _measure_stride(self) -> int:
        """Input/map size ratio of a plain file, from one run on a 64x64 probe (before a choice:
        on the CPU, so that the probe is not what auto measures)."""
        self._probing = True
        try:
            _, maps = self.run(np.zeros((1, 64, 64, 3), np.float32))
        finally:
            self._probing = False
        return max(1, round(64 / int(maps.shape[1])))

    def _open_engine(
        self, providers: list[str], config: SessionConfig, prebuilt: dict[tuple[Any, ...], Any]
    ) -> None:
        """Open the sessions that run: on ``providers`` with ``config``'s options; ``prebuilt``
        holds sessions already compiled (by a measurement), keyed by their dimension overrides.
        """
        ort, options, path = self._ort, self._options, self.path
        provider_list = [(p, config.options_for(p, self._input_name)) for p in providers]

        def build(overrides: dict[str, int]) -> Any:
            ready = prebuilt.pop(tuple(sorted(overrides.items())), None)
            return ready or open_session(ort, path, options, provider_list, overrides)

        static = config.static_shapes
        if static is None:  # OpenVINO with buckets: few shapes, each compiled once
            static = providers[0] == PROVIDERS["openvino"] and config.bucketed
        self._run_config = config
        if self._base is not None and (static or providers[0] == _CPU):
            self._session, self.providers = self._base, list(providers)
        elif static and providers[0] != _CPU:
            # The base session only describes the model: on the CPU, not compiled by the engine
            # (that would be one more copy of the weights); the per-shape sessions use it.
            self._session = open_session(ort, path, options, [(_CPU, {})], {})
            self.providers = list(providers)
        else:
            self._session = build({})
            self.providers = list(self._session.get_providers())
        self._device = config.binding_device(self.providers)
        binding = config.io_binding
        self._io_binding = self.on_gpu if binding is None else binding
        self._profile = config.trt_profile if PROVIDERS["tensorrt"] in self.providers else None
        self._graphs = None
        if config.cuda.cuda_graphs and self.providers[0] == PROVIDERS["cuda"]:
            self._graphs = CudaGraphs(ort, self._device[1], config.cuda.max_graphs)
        self._static = None
        if static:
            shape = self._session.get_inputs()[0].shape
            self._static = StaticSessions(
                build,
                {i: d for i, d in enumerate(shape) if isinstance(d, str)},
                config.max_static_sessions,
            )
        missing = [p for p in providers if p not in self.providers]
        if missing:
            warnings.warn(
                f"ONNX Runtime could not start {', '.join(missing)} (missing GPU libraries?); "
                f"running on {', '.join(self.providers)}: see 'cam-rt doctor'",
                ProviderFallbackWarning,
                stacklevel=3,
            )

    def _plan_choice(self) -> None:
        """Resolve ``auto`` from the only candidate or the cache, or leave it to the first run."""
        self.choice, self._pending, self._key = plan_choice(
            self.path, self._props, self.metadata.fp16, self.config, self._ort
        )
        if self.choice is not None:
            if self.choice.source.startswith("the file is"):  # auto keeps int8/fp16 files
                warnings.warn(f"{self.path.name}: {self.choice.source}", ChoiceNotice, 3)
            self._open_engine(*choice_config(self.config, self.choice.chosen), {})

    def _decide(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Measure the candidates on ``x``, keep the choice, return its outputs (None: another
        thread decided first)."""
        with self._lock:
            if self._pending is None:
                return None
            layout = self._layout

            def open_candidate(providers: list[str], config: SessionConfig, static: bool) -> Any:
                listed = [(p, config.options_for(p, self._input_name)) for p in providers]
                overrides = static_overrides(self._base, x.shape) if static else {}
                session = open_session(self._ort, self.path, self._options, listed, overrides)
                return tuple(sorted(overrides.items())), session

            names = (layout.input, layout.scores, layout.maps)
            self.choice, compiled, outputs = decide(
                self._pending, self.config, self._key, self._base, open_candidate, names, x
            )
            self._open_engine(*choice_config(self.config, self.choice.chosen), compiled)
            self._pending = None
            warnings.warn(f"auto chose {self.choice.describe()}", ChoiceNotice, stacklevel=4)
            return outputs

    @property
    def precision(self) -> str:
        """What arithmetic runs: the file's (fp32, fp16 export, int8 QDQ) or the engine's."""
        first = self.providers[0]
        on_openvino = first == PROVIDERS["openvino"]
        if PREFIX + "quantization" in self._props:
            return "int8 (QDQ file, OpenVINO)" if on_openvino else "int8 (QDQ file)"
        if self._pending is not None:
            return "auto (measured on the first run)"
        if on_openvino:
            return f"{self._run_config.openvino.resolved_precision()} (OpenVINO)"
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
        layout = self._layout
        clock = time.perf_counter
        start = clock()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if layout.numpy_pre is not None:
            x = layout.numpy_pre.apply(x)
        ready = clock()
        if self._profile is not None:
            self._profile.check(*x.shape[:3])
        try:
            scores, maps = self._run_engine(x)
        except Exception as exc:
            if not raised_by_onnxruntime(exc):
                raise  # a bug: unchanged, with its traceback
            raise ProviderError(
                f"ONNX Runtime failed on a batch of shape {batch.shape}: {first_line(exc)}"
            ) from exc
        ran = clock()
        out = cam_outputs(
            scores,
            maps,
            batch=x.shape[0],
            num_classes=self.metadata.num_classes,
            weights=layout.weights,
            source=str(self.path),
            advice="export the model again with 'cam-rt export' (a plain file: check its "
            "PlainModel outputs and class_names)",
        )
        if timings is not None:
            for key, seconds in (
                ("preprocess", ready - start),
                ("onnxruntime", ran - ready),
                ("cam_weighting", clock() - ran),
            ):
                timings[key] = timings.get(key, 0.0) + seconds
        return out

    def _run_engine(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's raw outputs for ``x``: through a CUDA graph, IO binding or a plain run."""
        if self._pending is not None and not self._probing:
            decided = self._decide(x)
            if decided is not None:
                return decided
        layout = self._layout
        session = self._session if self._static is None else self._static.get(x.shape)
        outputs = (layout.scores, layout.maps)
        if self._graphs is not None:
            return self._graphs.run(session, layout.input, outputs, x)
        if self._io_binding:
            return run_bound(session, layout.input, outputs, x, self._device)
        scores, maps = session.run(list(outputs), {layout.input: x})
        return scores, maps
