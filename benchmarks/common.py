"""Helpers shared by the benchmark scripts: statistics, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Where figures go; tests point it elsewhere so smoke runs never overwrite the real results.
RESULTS = Path(os.environ.get("CAM_RT_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))


@dataclass(frozen=True)
class Summary:
    """Median and spread of repeated measurements."""

    n: int
    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def summarize(samples: Sequence[float]) -> Summary:
    """Median, quartiles (inclusive method), min and max of ``samples``."""
    if not samples:
        raise ValueError("no samples to summarize")
    values = sorted(float(s) for s in samples)
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Summary(len(values), statistics.median(values), q1, q3, values[0], values[-1])


def machine() -> dict[str, Any]:
    """Facts that make figures comparable: CPU, cores, memory, Python, date."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass(frozen=True)
class ProcessRun:
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def run_process(args: Sequence[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run a command; its wall time and the peak RSS of that one child (``os.wait4``)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(args), stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessRun(seconds, usage.ru_maxrss / 1024, proc.returncode, out.read(), err.read())


def write_results(name: str, payload: dict[str, Any], table: str, folder: Path = RESULTS) -> Path:
    """Write ``name.json`` and ``name.md`` under ``folder``; returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), "argv": sys.argv, **payload}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    info = payload["machine"]
    header = f"# {name}\n\n{info['date']}, {info['cpu']}, {info['cores']} cores\n\n"
    (folder / f"{name}.md").write_text(header + table.rstrip() + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Summary):
        return {**asdict(value), "iqr": value.iqr}
    raise TypeError(f"cannot serialise {type(value).__name__}")
