"""The HTTP routes (Starlette): explain, KServe v1 explain, model metadata, health, metrics.

Every error a request can cause is a JSON ``{"error": "<one line>"}`` with its status: 400 a
bad body or option (an unknown class name lists close names), 404 an unknown path or model,
413 a body over ``--max-body-mb`` (refused from its Content-Length, unread) or an image over
``--max-pixels`` (refused from its header, undecoded), 422 an image the model cannot take,
503 (with ``Retry-After``) a full queue, a server warming up or stopping, 504 a request not
answered within ``--timeout-s``. A bug is a 500 whose body names no more than its type.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..batch.io import LoadedImage
from ..errors import CamRtError
from ..explain import CamResult
from .batcher import Batcher, ExplainerSet, Job, Key, QueueFull
from .codec import (
    BodyTooLarge,
    decode_image,
    decode_instances,
    error_status,
    explanation,
    render_result,
)
from .config import RequestOptions, ServeConfig
from .metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = ["ServeState", "build_app"]

RETRY_AFTER_S = 1
_log = logging.getLogger("cam_rt.serve")


class _Refused(CamRtError):
    """A request refused with a status of its own (404, 503, 504)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServeState:
    """What the routes share: the explainers, the batcher, the limits and the metrics."""

    explainers: ExplainerSet
    config: ServeConfig
    name: str
    batcher: Batcher = field(init=False)
    metrics: Metrics = field(init=False)
    ready: threading.Event = field(default_factory=threading.Event)
    warm_error: str | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        self.batcher = Batcher(
            self.explainers.get,
            cfg.max_batch,
            cfg.max_wait_ms / 1000,
            cfg.max_queue,
            observe=lambda n, s: self.metrics.observe_batch(n, s),
        )
        self.metrics = Metrics(self.batcher.depth)

    def warm_up(self) -> None:
        """One explain call at the model's size with the server's options; then ready."""
        try:
            base = self.explainers.base
            size = base.session.metadata.input_size or (224, 224)
            key, labels = self.explainers.key(RequestOptions(tta=self.explainers.tta_default))
            image = np.full((*size, 3), 127, np.uint8)
            self.explainers.get(key).explain(image, labels=None if labels is None else [labels])
            self.ready.set()
        except Exception as exc:  # the server stays up, unready: /healthz says why
            self.warm_error = f"warm-up failed: {' '.join(str(exc).split()) or type(exc).__name__}"
            _log.error("cam-rt: error: %s", self.warm_error)


def _error(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) from its Content-Length before reading, or once it grows past
    ``limit`` (chunked bodies)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"the body is {int(length)} bytes, above --max-body-mb ({limit} bytes)")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"the body is above --max-body-mb ({limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _endpoint(
    handler: Callable[[Request, ServeState], Awaitable[Response]], state: ServeState
) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` with every error it raises as a JSON response."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request, state)
        except _Refused as exc:
            return _error(exc.status, str(exc))
        except QueueFull as exc:
            return _error(503, str(exc))
        except (CamRtError, MemoryError) as exc:
            text = str(exc) if not isinstance(exc, MemoryError) else "not enough memory"
            return _error(error_status(exc), " ".join(text.split()))
        except Exception as exc:
            _log.exception("cam-rt: internal error on %s", request.url.path)
            return _error(500, f"internal error ({type(exc).__name__}); see the server's log")

    return run


def _ready(state: ServeState) -> None:
    if not state.ready.is_set():
        raise _Refused(503, state.warm_error or "the model is warming up: retry shortly")


async def _explain_images(
    state: ServeState,
    images: Callable[[], Sequence[LoadedImage]],
    options: RequestOptions,
    key: Any,
    labels: tuple[int, ...] | None,
    arrived: float,
) -> list[dict[str, Any]]:
    """Decode (``images``, in a thread), queue, wait (to ``--timeout-s`` after ``arrived``),
    render: the JSON of each image."""
    start = time.perf_counter()
    loaded = await run_in_threadpool(images)
    decode_s = (time.perf_counter() - start) / len(loaded)
    jobs = [Job(image, key, labels) for image in loaded]
    state.batcher.submit(jobs)
    waits = [asyncio.wrap_future(job.future) for job in jobs]
    remaining = state.config.timeout_s - (time.perf_counter() - arrived)
    try:
        results: list[CamResult] = await asyncio.wait_for(asyncio.gather(*waits), remaining)
    except asyncio.TimeoutError:
        raise _Refused(
            504, f"no answer within --timeout-s {state.config.timeout_s:g} s: retry later"
        ) from None

    def encode() -> list[dict[str, Any]]:
        out = []
        for job, result in zip(jobs, results, strict=True):
            begin = time.perf_counter()
            rendered = render_result(result, job.image, state.config.bg_threshold)
            timings = {"decode_s": decode_s, "queue_s": job.queue_s, "explain_s": job.explain_s}
            payload = explanation(result, rendered, options, timings, job.image.conversions)
            payload["timings"]["render_s"] = round(time.perf_counter() - begin, 6)
            payload["batch"] = job.batch
            out.append(payload)
        return out

    return await run_in_threadpool(encode)


async def _parsed(
    request: Request, state: ServeState
) -> tuple[RequestOptions, Key, tuple[int, ...] | None, bytes]:
    """A request's query options (checked), their explainer key and labels, then its body
    (read within ``--max-body-mb``): what both explain routes start with."""
    options = RequestOptions.parse(
        request.query_params,
        state.explainers.tta_default,
        state.explainers.base.config.classes.threshold,
    )
    key, labels = state.explainers.key(options)
    return options, key, labels, await _read_body(request, state.config.max_body_bytes)


async def _explain(request: Request, state: ServeState) -> Response:
    arrived = time.perf_counter()
    _ready(state)
    options, key, labels, body = await _parsed(request, state)
    max_pixels = state.config.max_pixels
    (payload,) = await _explain_images(
        state,
        lambda: [decode_image(body, max_pixels)],
        options,
        key,
        labels,
        arrived,
    )
    payload["timings"]["total_s"] = round(time.perf_counter() - arrived, 6)
    return JSONResponse(payload)


async def _kserve_explain(request: Request, state: ServeState) -> Response:
    arrived = time.perf_counter()
    _model_named(request, state)
    _ready(state)
    options, key, labels, body = await _parsed(request, state)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _Refused(400, 'the body is not JSON: send {"instances": [{"b64": ...}]}') from None
    blobs = decode_instances(document, state.config.max_queue)
    max_pixels = state.config.max_pixels

    def images() -> list[LoadedImage]:
        return [decode_image(b, max_pixels, f"instance {i}") for i, b in enumerate(blobs)]

    payloads = await _explain_images(state, images, options, key, labels, arrived)
    return JSONResponse({"explanations": payloads})


def _model_named(request: Request, state: ServeState) -> None:
    name = request.path_params["name"]
    if name != state.name:
        raise _Refused(404, f"model '{name}' is not served here: this server has '{state.name}'")


async def _model(request: Request, state: ServeState) -> Response:
    _model_named(request, state)
    base = state.explainers.base
    meta = base.session.metadata
    tta = state.explainers.tta
    return JSONResponse(
        {
            "name": state.name,
            "ready": state.ready.is_set(),
            "classes": list(meta.class_names),
            "activation": meta.activation,
            "method": meta.method,
            "input_size": list(meta.input_size) if meta.input_size else None,
            "fixed_size": meta.fixed_size,
            "input_size_mode": str(base.config.input_size),
            "class_selection": base.config.classes.mode,
            "tta": {
                "default": state.explainers.tta_default,
                "scales": list(tta.scales),
                "flip": tta.flip,
                "mode": tta.mode,
            },
            "limits": {
                "max_batch": state.config.max_batch,
                "max_wait_ms": state.config.max_wait_ms,
                "max_queue": state.config.max_queue,
                "timeout_s": state.config.timeout_s,
                "max_body_mb": state.config.max_body_mb,
                "max_pixels": state.config.max_pixels,
            },
        }
    )


async def _health(request: Request, state: ServeState) -> Response:
    if not state.batcher.alive():
        raise _Refused(503, "the batcher is not running")
    _ready(state)
    return JSONResponse({"status": "ok"})


async def _metrics(request: Request, state: ServeState) -> Response:
    return Response(state.metrics.text(), media_type=CONTENT_TYPE_LATEST)


class _Measured:
    """ASGI middleware: each request's route template, status and latency into the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sent)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "other"
            self.metrics.answered(route, status[0], time.perf_counter() - start)


def build_app(state: ServeState) -> Starlette:
    """The app of ``state``: its batcher starts with the app and the model warms up in the
    background (``/healthz`` is 503 until then); on shutdown the queued images finish."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.batcher.start()
        threading.Thread(target=state.warm_up, name="cam-rt-warm-up", daemon=True).start()
        yield
        await run_in_threadpool(state.batcher.close)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _error(status, f"{request.method} {request.url.path}: {exc}")

    routes = [
        Route("/v1/explain", _endpoint(_explain, state), methods=["POST"]),
        Route("/v1/models/{name}:explain", _endpoint(_kserve_explain, state), methods=["POST"]),
        Route("/v1/models/{name}", _endpoint(_model, state), methods=["GET"]),
        Route("/healthz", _endpoint(_health, state), methods=["GET"]),
        Route("/metrics", _endpoint(_metrics, state), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.add_middleware(_Measured, metrics=state.metrics)
    return app
