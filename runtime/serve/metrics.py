"""The server's Prometheus metrics, in a registry of its own (not the process-wide one), so
two apps in one process (tests) count apart.

- ``cam_rt_requests_total{route,status}``: answered requests; ``route`` is the route's template
  (``/v1/models/{name}:explain``), ``other`` for unknown paths;
- ``cam_rt_request_seconds{route}``: latency histogram, body read to response;
- ``cam_rt_queue_depth``: images waiting for the worker; ``cam_rt_requests_in_flight``;
- ``cam_rt_batch_images``: images per explain call (histogram);
- ``cam_rt_model_seconds``: seconds per explain call (ONNX Runtime runs, TTA and maps).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The metrics of one app; ``depth`` gives the queue depth when scraped."""

    def __init__(self, depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cam_rt_requests", "Requests answered.", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "cam_rt_request_seconds",
            "Request latency (s).",
            ["route"],
            buckets=_LATENCY,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "cam_rt_requests_in_flight", "Requests being handled.", registry=self.registry
        )
        queue = Gauge("cam_rt_queue_depth", "Images waiting for the model.", registry=self.registry)
        queue.set_function(lambda: float(depth()))
        self.batch = Histogram(
            "cam_rt_batch_images",
            "Images per explain call (micro-batch).",
            buckets=_BATCH,
            registry=self.registry,
        )
        self.model = Histogram(
            "cam_rt_model_seconds",
            "Seconds per explain call (ONNX Runtime, TTA, maps).",
            buckets=_LATENCY,
            registry=self.registry,
        )

    def observe_batch(self, images: int, seconds: float) -> None:
        self.batch.observe(images)
        self.model.observe(seconds)

    def answered(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
