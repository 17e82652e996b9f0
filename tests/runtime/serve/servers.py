"""A real ``cam-rt serve`` process on 127.0.0.1 (port chosen by the OS) for the tests, and
the request bodies they send (real PNG/JPEG files, a decompression bomb's header)."""

from __future__ import annotations

import io
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Server:
    """A running server: its process, base URL and the stderr lines read so far."""

    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@contextmanager
def running(model: Path, *options: str, ready: bool = True) -> Iterator[Server]:
    """``cam-rt serve model --port 0 options...``, waited for (its address line, then
    /healthz 200 if ``ready``); stopped with SIGTERM at the end."""
    args = [sys.executable, "-m", "cam_rt.runtime.cli", "serve", str(model), "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*args, *options],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    url = ""
    deadline = time.monotonic() + 120
    while not url:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            proc.wait(10)
            raise AssertionError(f"server ended (code {proc.returncode}): {seen}")
        seen.append(line)
        if line.startswith("cam-rt: serving "):
            url = line.split(" on ", 1)[1].split()[0]
    server = Server(proc, url, seen)
    try:
        if ready:
            wait_ready(url)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        while (line := _next(lines)) is not None:
            seen.append(line)
        proc.stderr.close()


def _next(lines: queue.Queue[str | None]) -> str | None:
    try:
        return lines.get(timeout=5)
    except queue.Empty:
        return None


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url}/healthz never answered 200")


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB uint8 picture (gradients and a bright disc)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7, 2) * (height, width)
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < (min(height, width) / 4) ** 2) * 120
    rgb = np.stack([xx / width * 200 + disc, yy / height * 200, 255 - disc - yy / height * 80], -1)
    return np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)


def encoded(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with a few bytes of data: a
    decoder that believed it would allocate 30 GB."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def many(count: int, call: object, args: Sequence[object]) -> list[object]:
    """``call(arg)`` for each of ``args`` from ``count`` threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, args))  # type: ignore[arg-type]
