"""Helpers shared by the benchmark scripts: statistics, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cam_rt.runtime.tools.bench import LatencyStats, latency_stats

# Where figures go; tests point it elsewhere so smoke runs never overwrite the real results.
RESULTS = Path(os.environ.get("CAM_RT_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))


# One implementation of the statistics: the runtime's (also behind ``cam-rt bench``).
summarize = latency_stats


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


# A child's ``ru_maxrss`` counts the memory of the process it was forked from (Linux keeps the
# pre-exec high-water mark), so a child of a benchmark that holds a 400 MB model would report at
# least that. Children are therefore forked by this small launcher, which reports the peak RSS
# and the wall time of its own child (from fork to exit) in a file.
# A SIGINT to the launcher is passed on to the command (benchmarks that interrupt a run).
LAUNCHER = """
import os, signal, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        print(f"cannot run {sys.argv[2]}: {exc}", file=sys.stderr)
    os._exit(127)
signal.signal(signal.SIGINT, lambda *_: os.kill(pid, signal.SIGINT))
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {seconds} {code}")
sys.exit(128 - code if code < 0 else code)
"""


def square_on_ramp(
    rng: np.random.Generator, height: int, width: int, divisor: int = 6, min_half: int = 4
) -> np.ndarray:
    """A synthetic photo: a horizontal colour ramp with one flat square of a random colour
    (half side ``min(h, w) // divisor``, at least ``min_half``), uint8 (H, W, 3)."""
    ramp = np.linspace(0, 1, width)[None, :, None]
    a, b = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    img = np.broadcast_to(a + (b - a) * ramp, (height, width, 3)).astype(np.uint8).copy()
    r = max(min_half, min(height, width) // divisor)
    cy, cx = int(rng.integers(r, height - r)), int(rng.integers(r, width - r))
    img[cy - r : cy + r, cx - r : cx + r] = rng.integers(0, 256, 3)
    return img


def run_process(args: Sequence[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run a command; its wall time and peak RSS, measured by a small launcher process so the
    figures are the command's own (not inherited from this, possibly large, process)."""
    import tempfile

    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r", suffix=".rusage") as report,
    ):
        cmd = [sys.executable, "-c", LAUNCHER, report.name, *args]
        proc = subprocess.run(cmd, stdout=out, stderr=err, text=True, env=env, check=False)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        fields = report.read().split()
        if len(fields) != 3:  # the launcher itself failed: say why, with the command's stderr
            raise RuntimeError(f"measuring {list(args)} failed ({proc.returncode}): {stderr}")
        maxrss_kib, seconds, code = fields
        return ProcessRun(float(seconds), int(maxrss_kib) / 1024, int(code), stdout, stderr)


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
    if isinstance(value, LatencyStats):
        return value.as_dict()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Models the benchmarks share, built once into .bench-cache/ (git-ignored).

CACHE = Path(
    os.environ.get("CAM_RT_BENCH_CACHE", Path(__file__).resolve().parents[1] / ".bench-cache")
)


def _cam_rt() -> str:
    return str(Path(sys.executable).with_name("cam-rt"))


def resnet38d_file(output: str = "cam") -> Path:
    """The built-in ResNet38-d with random weights (seed 0), exported once."""
    path = CACHE / f"resnet38d_{output}.onnx"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [_cam_rt(), "export", "resnet38d", "--weights", "none", "-o", str(path)]
        subprocess.run([*cmd, "--output", output, "--quiet"], check=True)
    return path


def demo_files() -> tuple[Path, Path]:
    """The trained demo model as ``.keras`` and exported ``.onnx``, keyed by its weights."""
    import hashlib

    from cam_rt.export.train_demo import DEMO_WEIGHTS

    digest = hashlib.sha256(DEMO_WEIGHTS.read_bytes()).hexdigest()[:12]
    keras_path, onnx_path = CACHE / f"demo-{digest}.keras", CACHE / f"demo-{digest}.onnx"
    if not onnx_path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        code = (
            "from cam_rt.export.train_demo import load_demo_model\n"
            f"load_demo_model().save({str(keras_path)!r})\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
        cmd = [_cam_rt(), "export", str(keras_path), "-o", str(onnx_path), "--quiet"]
        subprocess.run(cmd, check=True)
    return keras_path, onnx_path


# ---------------------------------------------------------------------------------------------
# How far from the machine's limit: model FLOPs and the measured fp32 matrix-multiply peak.


def matmul_peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matrix product in NumPy's BLAS (all cores)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def model_gflop(onnx_path: Path, height: int, width: int, batch: int = 1) -> float:
    """Multiply-add FLOPs (2 per MAC) of the Conv, MatMul and Gemm nodes at one input size."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(onnx_path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (batch, height, width, 3), strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = value
    inferred = shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        shapes[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    shapes.update(inits)
    total = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            kernel = shapes.get(node.input[1])
            if not out or not kernel:
                raise ValueError(f"no shape for Conv node {node.name}")
            out_elems = 1
            for d in out:
                out_elems *= d
            # kernel (M, C/group, kh, kw): each output element takes C/group * kh * kw MACs.
            total += 2 * out_elems * kernel[1] * kernel[2] * kernel[3]
        elif node.op_type in ("MatMul", "Gemm"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if not a or not out:
                raise ValueError(f"no shape for {node.op_type} node {node.name}")
            out_elems = 1
            for d in out:
                out_elems *= d
            total += 2 * out_elems * a[-1]
    return total / 1e9


# ---------------------------------------------------------------------------------------------


def plot_bars(
    path: Path,
    groups: Sequence[str],
    series: dict[str, Sequence[float]],
    ylabel: str,
    title: str,
) -> Path | None:
    """A grouped bar chart (PNG); None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed (extra 'bench'); no plot written")
        return None
    import numpy as np

    x = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups)), 4.0), dpi=110)
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(x, groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
