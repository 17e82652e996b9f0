"""How a :class:`~cam_rt.runtime.backend.session.CamSession` resolves ``--device auto`` and
``--precision auto`` on the CPU: which candidates compete for a file (:func:`plan_choice`, with
the cache), what session options each runs with (:func:`choice_config`), and the measurement on
the run's first input (:func:`decide`). The decision rule and the cache are
:mod:`~cam_rt.runtime.backend.precision`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..metadata import PREFIX
from .onnx_file import read_metadata_props
from .ort import PROVIDERS, onnxruntime, resolve_providers
from .precision import (
    Candidate,
    Decision,
    DecisionCache,
    choice_key,
    choose,
    cpu_model,
    file_sha256,
    measure,
    plan_candidates,
    today,
)
from .providers import BF16_FLAGS, OpenVINOPrecision, cpu_flags

if TYPE_CHECKING:  # session imports this module
    from .session import SessionConfig

__all__ = [
    "auto_choice",
    "auto_device",
    "choice_config",
    "decide",
    "engine_version",
    "file_precision",
    "measures",
    "plan_choice",
    "static_overrides",
]

_CPU, _OPENVINO = PROVIDERS["cpu"], PROVIDERS["openvino"]


def auto_device(providers: Sequence[str]) -> bool:
    """Whether ``--device`` leaves the engine to cam-rt (``auto`` among the names)."""
    return any(p.strip().lower() == "auto" for p in providers)


def measures(config: SessionConfig, providers: Sequence[str]) -> bool:
    """Whether ``auto`` is cam-rt's to resolve: OpenVINO on the CPU comes first (no GPU ahead of
    it) and its precision is ``auto``, or ``--device auto`` with fp32 (engine against engine)."""
    openvino = config.openvino
    if providers[0] != _OPENVINO or not openvino.on_cpu:
        return False
    return openvino.precision == "auto" or (
        auto_device(config.providers) and openvino.precision == "fp32"
    )


def file_precision(props: Mapping[str, str], fp16: bool) -> str:
    """The precision a file holds: int8 (QDQ, ``cam-rt quantize``), fp16 or fp32."""
    if PREFIX + "quantization" in props:
        return "int8"
    return "fp16" if fp16 else "fp32"


def engine_version(ort: Any) -> str:
    """``onnxruntime 1.24.1, OpenVINO 2025.4.1``: the build that runs (OpenVINO's version from
    the library onnxruntime-openvino ships)."""
    capi = Path(ort.__file__).resolve().parent / "capi"
    found = sorted(p.name.removeprefix("libopenvino.so.") for p in capi.glob("libopenvino.so.*.*"))
    openvino = f", OpenVINO {found[-1]}" if found else ""
    return f"onnxruntime {ort.__version__}{openvino}"


def candidates_for(props: Mapping[str, str], fp16: bool, config: SessionConfig) -> Any:
    """:func:`plan_candidates` for a file's metadata and a session config on this CPU."""
    return plan_candidates(
        file_precision(props, fp16),
        auto_device(config.providers),
        config.openvino.precision,
        any(f in cpu_flags() for f in BF16_FLAGS),
    )


def plan_choice(
    path: Path, props: Mapping[str, str], fp16: bool, config: SessionConfig, ort: Any
) -> tuple[Decision | None, list[Candidate] | None, dict[str, Any]]:
    """The decision if it is known without measuring (one candidate, or cached), else the
    candidates to measure; and the cache key."""
    candidates, note = candidates_for(props, fp16, config)
    if len(candidates) == 1:
        return Decision(candidates[0], source=note or "the only candidate"), None, {}
    key = key_for(path, candidates, config, ort)
    found = DecisionCache().get(key) if config.choice_cache == "use" else None
    return (found, None, key) if found is not None else (None, candidates, key)


def auto_choice(path: Path, fp16: bool, config: SessionConfig) -> str:
    """What ``config``'s ``auto`` runs ``path`` with on this machine, and where that comes from
    (the cache, the only candidate), without opening a session."""
    ort = onnxruntime()
    providers = resolve_providers(config.providers, ort.get_available_providers())
    if not measures(config, providers):
        engine = "openvino" if providers[0] == _OPENVINO else providers[0]
        return f"{engine} (nothing to measure: {', '.join(config.providers)} on this install)"
    props = read_metadata_props(path)
    decision, candidates, _ = plan_choice(path, props, fp16, config, ort)
    if decision is not None:
        return decision.describe()
    listed = ", ".join(c.label for c in candidates or ())
    return f"not measured yet: the first run measures {listed}"


def key_for(
    path: Path, candidates: Sequence[Candidate], config: SessionConfig, ort: Any
) -> dict[str, Any]:
    """The cache key of a choice among ``candidates`` for the file at ``path``."""
    remember = None if config.choice_cache == "off" else DecisionCache().folder
    digest = file_sha256(path, remember)
    threads = config.intra_op_threads
    return choice_key(cpu_model(), engine_version(ort), digest, candidates, threads)


def choice_config(config: SessionConfig, candidate: Candidate) -> tuple[list[str], SessionConfig]:
    """The providers and session config a candidate runs with (int8 and fp16 files run on
    OpenVINO with its default fp32 hint: their own arithmetic stays)."""
    if candidate.engine == "cpu":
        return [_CPU], config
    precision: OpenVINOPrecision = "bf16" if candidate.precision == "bf16" else "fp32"
    openvino = replace(config.openvino, precision=precision)
    return [_OPENVINO, _CPU], replace(config, openvino=openvino)


def static_overrides(base: Any, shape: tuple[int, ...]) -> dict[str, int]:
    """The named dynamic dimensions of the model's input, fixed to ``shape``."""
    dims = base.get_inputs()[0].shape
    return {d: int(shape[i]) for i, d in enumerate(dims) if isinstance(d, str)}


OpenCandidate = Callable[[list[str], "SessionConfig", bool], tuple[tuple[Any, ...], Any]]


def decide(
    candidates: Sequence[Candidate],
    config: SessionConfig,
    key: Mapping[str, Any],
    base: Any,
    open_candidate: OpenCandidate,
    names: tuple[str, str, str],
    x: np.ndarray,
) -> tuple[Decision, dict[tuple[Any, ...], Any], tuple[np.ndarray, np.ndarray]]:
    """Measure ``candidates`` on ``x`` (``base``: the CPU session; ``open_candidate`` compiles
    the others, per shape where the config's sessions are static), choose, store the decision
    unless the cache is off; return it, the chosen candidate's compiled sessions (keyed by their
    overrides) and its outputs for ``x``."""
    input_name, scores, maps = names
    compiled: dict[Candidate, dict[tuple[Any, ...], Any]] = {}

    def runner_for(candidate: Candidate) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        session = base
        if candidate.engine != "cpu":
            providers, run_config = choice_config(config, candidate)
            static = run_config.static_shapes
            static = run_config.bucketed if static is None else static
            overrides, session = open_candidate(providers, run_config, static)
            compiled[candidate] = {overrides: session}

        def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            a, b = session.run([scores, maps], {input_name: batch})
            return a, b

        return run

    found, outputs = measure(candidates, runner_for, x)
    best = choose(found).candidate
    decision = Decision(best, tuple(found), tuple(int(d) for d in x.shape), today())
    if config.choice_cache != "off":
        DecisionCache().put(key, decision)
    return decision, compiled.get(best, {}), outputs[best]
