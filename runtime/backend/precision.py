"""``--device auto`` and ``--precision auto`` on the CPU, decided by measurement, and the cache
that makes the decision once per machine and model.

CPU flags do not predict which OpenVINO precision is fastest (bf16 ran at half the fp32 speed on
a Xeon with AVX512-BF16 and twice it on a Zen 5 with the same flags), nor whether OpenVINO beats
ONNX Runtime's own CPU provider. So the candidates (:func:`plan_candidates`: the CPU provider,
OpenVINO fp32, OpenVINO bf16 where the CPU has bf16; only the file's own precision for int8 and
fp16 files) run the model's first input of the run, 1 warm-up and 3 timed runs each
(:func:`measure`), and :func:`choose` takes the fastest whose normalized maps stay within
``MAX_MEAN_ABS`` of the reference (the first candidate, fp32). The decision is cached
(:class:`DecisionCache`) under the key of :func:`choice_key`: CPU, engine version, the model
file's sha256, the candidates and the thread count. Pure logic and files: no onnxruntime import.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import CamRtNotice, ConfigError
from ..maps.filters import positive_normalize

__all__ = [
    "MAX_MEAN_ABS",
    "Candidate",
    "ChoiceCacheMode",
    "ChoiceNotice",
    "Decision",
    "DecisionCache",
    "Measurement",
    "cache_dir",
    "choice_key",
    "choose",
    "cpu_model",
    "file_sha256",
    "measure",
    "plan_candidates",
]

#: The largest mean absolute difference of normalized maps (0..1) from fp32 a choice may have.
MAX_MEAN_ABS = 0.005
WARMUP_RUNS = 1
TIMED_RUNS = 3
CACHE_ENV = "CAM_RT_CACHE_DIR"
ChoiceCacheMode = Literal["use", "refresh", "off"]
CHOICE_CACHE_MODES = ("use", "refresh", "off")
_DECISIONS = "choices.json"
_HASHES = "hashes.json"


class ChoiceNotice(CamRtNotice):
    """What ``auto`` measured and chose (or why it had nothing to choose from)."""


@dataclass(frozen=True, slots=True, order=True)
class Candidate:
    """An engine (``cpu``: ONNX Runtime's CPU provider, or ``openvino``) at a precision."""

    engine: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"


@dataclass(frozen=True, slots=True)
class Measurement:
    """A candidate's median seconds per run and its maps' mean abs difference from the
    reference candidate's (normalized maps, 0..1)."""

    candidate: Candidate
    seconds: float
    mean_abs: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen candidate, what was measured, on which input, when; ``source`` says where the
    decision came from (``measured``, ``cache <path>``, or why nothing was measured)."""

    chosen: Candidate
    measurements: tuple[Measurement, ...] = ()
    shape: tuple[int, ...] = ()
    date: str = ""
    source: str = "measured"

    def describe(self) -> str:
        """``openvino fp32 (measured on 1x112x112x3, 2026-12-02: cpu fp32 120.0 ms, ...)``."""
        if not self.measurements:
            return f"{self.chosen.label} ({self.source})"
        shape = "x".join(str(d) for d in self.shape)
        parts = ", ".join(
            f"{m.candidate.label} {m.seconds * 1e3:.1f} ms"
            + ("" if m.mean_abs <= MAX_MEAN_ABS else f" but maps {m.mean_abs:.4f} off")
            for m in self.measurements
        )
        where = "" if self.source == "measured" else f"; {self.source}"
        return f"{self.chosen.label} (measured on {shape}, {self.date}: {parts}{where})"

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen": [self.chosen.engine, self.chosen.precision],
            "measurements": [
                [m.candidate.engine, m.candidate.precision, m.seconds, m.mean_abs]
                for m in self.measurements
            ],
            "shape": list(self.shape),
            "date": self.date,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> Decision:
        """The decision of a cache entry; ValueError/TypeError/KeyError if it is malformed."""
        engine, precision = data["chosen"]
        found = tuple(
            Measurement(Candidate(str(e), str(p)), float(s), float(a))
            for e, p, s, a in data["measurements"]
        )
        return cls(
            Candidate(str(engine), str(precision)),
            found,
            tuple(int(d) for d in data["shape"]),
            str(data["date"]),
            source,
        )


def choose(measurements: Sequence[Measurement], bound: float = MAX_MEAN_ABS) -> Measurement:
    """The fastest measurement whose maps are within ``bound`` of the reference (ties: the
    earlier one); a candidate outside the bound (or with NaN maps) is never chosen."""
    within = [m for m in measurements if m.mean_abs <= bound]  # NaN compares False
    if not within:
        raise ConfigError(
            f"no candidate's maps are within mean abs {bound} of fp32: force one with "
            "--device and --precision"
        )
    return min(within, key=lambda m: m.seconds)


Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def measure(
    candidates: Sequence[Candidate],
    runner_for: Callable[[Candidate], Runner],
    x: np.ndarray,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[Measurement], dict[Candidate, tuple[np.ndarray, np.ndarray]]]:
    """Each candidate's median time over ``TIMED_RUNS`` runs of ``x`` after ``WARMUP_RUNS``
    (compiling is in ``runner_for``, not timed), its maps' mean abs difference from the first
    candidate's (normalized per image and class), and its last outputs."""
    found: list[Measurement] = []
    outputs: dict[Candidate, tuple[np.ndarray, np.ndarray]] = {}
    reference: np.ndarray | None = None
    for candidate in candidates:
        run = runner_for(candidate)
        for _ in range(WARMUP_RUNS):
            out = run(x)
        times = []
        for _ in range(TIMED_RUNS):
            start = clock()
            out = run(x)
            times.append(clock() - start)
        maps = positive_normalize(out[1])
        if reference is None:
            reference = maps
        off = float(np.abs(maps - reference).mean()) if maps.shape == reference.shape else np.nan
        found.append(Measurement(candidate, float(np.median(times)), off))
        outputs[candidate] = out
    return found, outputs


def plan_candidates(
    file_precision: str,
    auto_device: bool,
    precision: str,
    cpu_has_bf16: bool,
) -> tuple[list[Candidate], str]:
    """What ``auto`` compares, reference first, and a note on what it leaves out.

    ``file_precision``: fp32, or int8/fp16 for quantized or fp16 files (run as they are: auto
    never picks a precision the file does not have); ``auto_device``: ONNX Runtime's CPU
    provider competes with OpenVINO; ``precision``: the OpenVINO precision asked for (auto, or
    forced; forcing bf16 means OpenVINO)."""
    out: list[Candidate] = []
    if file_precision != "fp32":
        note = f"the file is {file_precision}: auto keeps the file's precision"
        if auto_device:
            out.append(Candidate("cpu", file_precision))
        return [*out, Candidate("openvino", file_precision)], note
    if precision == "auto":
        if auto_device:
            out.append(Candidate("cpu", "fp32"))
        out.append(Candidate("openvino", "fp32"))
        if cpu_has_bf16:
            return [*out, Candidate("openvino", "bf16")], ""
        return out, "this CPU has no bf16 (no AVX512-BF16 or AMX): fp32 only"
    if auto_device and precision == "fp32":
        return [Candidate("cpu", "fp32"), Candidate("openvino", "fp32")], ""
    return [Candidate("openvino", precision)], f"--precision {precision} forced"


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name, vendor, family and model, and a digest of its flags (one "AMD
    EPYC" name covers Zen 2 to Zen 5)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    flags = hashlib.sha256(" ".join(sorted(fields.get("flags", "").split())).encode())
    return (
        f"{fields.get('model name', 'unknown CPU')} ({fields.get('vendor_id', '?')} family "
        f"{fields.get('cpu family', '?')} model {fields.get('model', '?')}, flags "
        f"{flags.hexdigest()[:12]})"
    )


def cache_dir() -> Path:
    """``$CAM_RT_CACHE_DIR``, else ``$XDG_CACHE_HOME/cam-rt``, else ``~/.cache/cam-rt``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cam-rt"


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Written whole or not at all (a temporary file renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def file_sha256(path: Path, folder: Path | None = None) -> str:
    """The sha256 of ``path`` (read in 1 MiB blocks), remembered in ``folder`` per (path,
    size, mtime) so that a 400 MB model is read once, not at every start."""
    stat = path.stat()
    entry = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    store = None if folder is None else folder / _HASHES
    known = (_read_json(store) or {}) if store is not None else {}
    if isinstance(known.get(entry), str):
        return str(known[entry])
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    value = digest.hexdigest()
    if store is not None:
        with contextlib.suppress(OSError):  # a read-only cache costs time, not correctness
            _write_json(store, {**known, entry: value})
    return value


def choice_key(
    cpu: str, engine: str, model_sha256: str, candidates: Sequence[Candidate], threads: int
) -> dict[str, Any]:
    """What a decision depends on: the machine, the engine build, the model, what competes."""
    return {
        "cpu": cpu,
        "engine": engine,
        "model_sha256": model_sha256,
        "candidates": [c.label for c in candidates],
        "threads": threads,
    }


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class DecisionCache:
    """Decisions in ``folder/choices.json``, keyed by :func:`choice_key`. A missing, corrupt
    or malformed file or entry reads as no decision, and the next :meth:`put` rewrites it."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = cache_dir() if folder is None else Path(folder)
        self.path = self.folder / _DECISIONS

    def _entries(self) -> dict[str, Any]:
        data = _read_json(self.path)
        entries = data.get("decisions") if data is not None else None
        return entries if isinstance(entries, dict) else {}

    def get(self, key: Mapping[str, Any]) -> Decision | None:
        entry = self._entries().get(_digest(key))
        try:
            if entry["key"] != dict(key):  # type: ignore[index]
                return None
            return Decision.from_json(entry["decision"], f"cache {self.path}")  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, key: Mapping[str, Any], decision: Decision) -> None:
        """Stored atomically; a cache folder that cannot be written is left alone (the
        decision is measured again next time)."""
        entries = self._entries()
        entries[_digest(key)] = {"key": dict(key), "decision": decision.to_json()}
        with contextlib.suppress(OSError):
            _write_json(self.path, {"version": 1, "decisions": entries})

    def all(self) -> list[tuple[dict[str, Any], Decision]]:
        """Every well-formed entry, as (key, decision)."""
        out = []
        for entry in self._entries().values():
            try:
                out.append((dict(entry["key"]), Decision.from_json(entry["decision"], "cache")))
            except (KeyError, TypeError, ValueError):
                continue
        return out


def today() -> str:
    return datetime.date.today().isoformat()
