"""Running the app: uvicorn on one socket, stopped gracefully by SIGTERM or SIGINT.

uvicorn catches the signal, stops accepting connections, lets the requests in flight finish
(up to ``--timeout-s`` plus a margin), then runs the app's shutdown (the queued images finish).
Its usual last step, raising the signal again once stopped, is left out: a stop asked for is
the server's normal end, exit code 0 (cam-rt's own handlers would make it 130).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from .app import ServeState, build_app
from .batcher import ExplainerSet
from .config import ServeConfig

__all__ = ["serve"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_GRACE_S = 10.0  # beyond --timeout-s: the time a response (rendering, sending) may still take


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(
    explainers: ExplainerSet,
    config: ServeConfig,
    name: str,
    say: Callable[[str], None] = print,
) -> None:
    """Serve ``explainers`` over HTTP until SIGTERM or SIGINT; ``say`` gets the line naming
    the address (with the port bound, for ``--port 0``) and the closing line."""
    state = ServeState(explainers, config, name)
    settings = uvicorn.Config(
        build_app(state),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(config.timeout_s + _GRACE_S),
    )
    server = _Server(settings)
    sock = settings.bind_socket()
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    say(f"cam-rt: serving {name} on http://{shown}:{port} (POST /v1/explain; GET /healthz)")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    answered = sum(
        int(s.value)
        for m in state.metrics.requests.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )
    say(f"cam-rt: stopped: {answered} requests answered")
