"""Benchmark: ``cam-rt serve`` on loopback against ``cam-rt run`` on the same images.

For micro-batching on (``--max-batch 8 --max-wait-ms 5``) and off (``--max-batch 1
--max-wait-ms 0``), a server process answers ``--requests`` POST /v1/explain requests
(``outputs=overlay``, as ``cam-rt run --save overlay`` writes) from 1, 4 and 16 concurrent
clients (threads, one HTTP connection each): p50 and p99 latency and requests/s. Then the
batching server answers ``--rss-requests`` more while its RSS is read from /proc every tenth
of them: it must stay flat. ``cam-rt run`` on a folder of the same images gives the
throughput of the batch path (its process start included).

    python benchmarks/serve.py [--model FILE.onnx] [--images 32] [--size 480x640] [--tta]

Without --model the trained demo model is exported once into .bench-cache/.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import demo_files, run_process, square_on_ramp, summarize, write_results

from tests.runtime.serve.servers import running

MODES = {
    "batching": ("--max-batch", "8", "--max-wait-ms", "5"),
    "no batching": ("--max-batch", "1", "--max-wait-ms", "0"),
}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _load(url: str, bodies: list[bytes], clients: int, requests: int) -> dict[str, Any]:
    """``requests`` requests from ``clients`` threads (round robin over ``bodies``)."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(timeout=120) as session:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                r = session.post(
                    f"{url}/v1/explain?outputs=overlay", content=bodies[i % len(bodies)]
                )
                r.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"clients": clients, "latency": summarize(latencies), "requests_per_s": requests / wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="ONNX file (default: the demo model)")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--size", default="480x640", help="HxW of the images")
    p.add_argument("--requests", type=int, default=160, help="per client count and mode")
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--rss-requests", type=int, default=1000)
    p.add_argument("--tta", action="store_true")
    p.add_argument("--name", default="serve")
    args = p.parse_args(argv)
    model = args.model or demo_files()[1]
    height, width = (int(v) for v in args.size.split("x"))
    clients = [int(c) for c in args.clients.split(",")]
    tta = ["--tta"] if args.tta else []
    print(
        f"config: model={model.name} images={args.images} size={args.size} tta={args.tta} "
        f"requests={args.requests} clients={clients}"
    )
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    rss: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        bodies = []
        for i in range(args.images):
            buf = io.BytesIO()
            Image.fromarray(square_on_ramp(rng, height, width)).save(buf, "PNG")
            bodies.append(buf.getvalue())
            (folder / f"img{i:04d}.png").write_bytes(bodies[-1])
        cam_rt = str(Path(sys.executable).with_name("cam-rt"))
        out = Path(tmp) / "out"
        run = run_process(
            [
                cam_rt,
                "run",
                str(model),
                str(folder),
                "-o",
                str(out),
                "--save",
                "overlay",
                "-q",
                *tta,
            ]
        )
        if run.returncode != 0:
            raise RuntimeError(run.stderr)
        run_ips = args.images / run.seconds
        print(
            f"cam-rt run: {run_ips:.1f} images/s ({args.images} images, {run.seconds:.2f} s, "
            "process start included)"
        )
        for mode, options in MODES.items():
            with running(model, *tta, *options, "--max-queue", "64") as srv:
                _load(srv.url, bodies, 2, min(16, args.requests))  # warm connections and caches
                for c in clients:
                    row = {"mode": mode, **_load(srv.url, bodies, c, args.requests)}
                    rows.append(row)
                    lat = row["latency"]
                    print(
                        f"{mode:>11} clients={c:>2}: p50 {lat.p50 * 1e3:.1f} ms p99 "
                        f"{lat.p99 * 1e3:.1f} ms {row['requests_per_s']:.1f} req/s"
                    )
                if mode == "batching":
                    step = max(1, args.rss_requests // 10)
                    for done in range(0, args.rss_requests, step):
                        _load(srv.url, bodies, 4, step)
                        rss.append((done + step, _rss_mib(srv.proc.pid)))
                    print("RSS (MiB) after requests: " + ", ".join(f"{n}: {m:.0f}" for n, m in rss))
    table = ["| mode | clients | p50 ms | p99 ms | requests/s |", "|---|---|---|---|---|"]
    for row in rows:
        lat = row["latency"]
        table.append(
            f"| {row['mode']} | {row['clients']} | {lat.p50 * 1e3:.1f} | {lat.p99 * 1e3:.1f} "
            f"| {row['requests_per_s']:.1f} |"
        )
    table.append(
        f"| cam-rt run (one process, start included) | - | - | - | {run_ips:.1f} images/s |"
    )
    table.append("")
    table.append(
        "RSS of the batching server (MiB) after N more requests: "
        + ", ".join(f"{n}: {m:.0f}" for n, m in rss)
    )
    growth = rss[-1][1] - rss[0][1] if rss else 0.0
    table.append(f"\nRSS growth from the first to the last reading: {growth:+.1f} MiB")
    payload = {
        "model": str(model),
        "images": args.images,
        "size": [height, width],
        "tta": args.tta,
        "rows": rows,
        "cam_rt_run_images_per_s": run_ips,
        "rss_mib": rss,
        "rss_growth_mib": growth,
    }
    write_results(args.name, payload, "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
