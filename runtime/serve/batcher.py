"""Micro-batching: a bounded queue of images and one worker thread that explains them.

Requests put their images on the queue (:meth:`Batcher.submit`; all or none, 503 when it would
overflow) and wait on each image's future. The worker takes the first waiting image, then
others for up to ``max_wait`` seconds or until it holds ``max_batch``, groups them by their
options (TTA on or off, class selection) and calls :func:`explain_images` once per group, so
the explainer's planner puts the passes of the same input shape into one ONNX Runtime run
(up to ``--batch-size`` inputs). An image whose future was cancelled before the worker took it
(the request timed out) is dropped unrun.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from ..batch.io import LoadedImage
from ..batch.steps import explain_images
from ..errors import CamRtError
from ..explain import CamResult, ClassSelection, Explainer
from ..maps.tta import TTAConfig
from .config import RequestOptions

__all__ = ["Batcher", "ExplainerSet", "Job", "QueueFull"]

#: (TTA on, class selection; None: the classes come with each image).
Key = tuple[bool, ClassSelection | None]
_CACHED = 64  # explainers kept (one per distinct TTA and class selection asked for)


class QueueFull(CamRtError):
    """The queue cannot take the request's images (or the server is stopping): HTTP 503."""


@dataclass(eq=False)
class Job:
    """One image to explain, with its group key and fixed classes (ids), and its future."""

    image: LoadedImage
    key: Hashable
    labels: tuple[int, ...] | None = None
    future: Future[CamResult] = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)
    queue_s: float = 0.0
    explain_s: float = 0.0
    batch: int = 0


class ExplainerSet:
    """The explainers of one session: the server's own, and one per TTA and class selection a
    request asks for (made on first use, a bounded number kept)."""

    def __init__(self, base: Explainer, tta: TTAConfig, tta_default: bool) -> None:
        self.base = base
        self.tta = tta
        self.tta_default = tta_default
        self._made: dict[Hashable, Explainer] = {}
        self._lock = threading.Lock()

    def key(self, options: RequestOptions) -> tuple[Key, tuple[int, ...] | None]:
        """The group key of a request's options and its fixed classes as ids (ConfigError for
        an unknown class name, listing close names, or for options the model cannot take)."""
        selection = options.classes or self.base.config.classes
        labels = None
        if selection.mode == "fixed":
            labels = self.base.resolve_labels(selection.labels)
        key: Key = (options.tta, None if labels is not None else selection)
        self.get(key)  # the explainer can be made (e.g. TTA on a fixed-size model)
        return key, labels

    def get(self, key: Hashable) -> Explainer:
        """The explainer of a group key (of :meth:`key`)."""
        with self._lock:
            made = self._made.get(key)
            if made is None:
                tta, selection = _split(key)
                config = replace(
                    self.base.config,
                    tta=self.tta if tta else None,
                    classes=selection or ClassSelection(),
                )
                made = Explainer(self.base.session, config)
                if len(self._made) >= _CACHED:
                    self._made.pop(next(iter(self._made)))
                self._made[key] = made
            return made


def _split(key: Hashable) -> Key:
    if not isinstance(key, tuple) or len(key) != 2:
        raise TypeError(f"not a group key: {key!r}")
    tta, selection = key
    if not isinstance(tta, bool) or not isinstance(selection, (ClassSelection, type(None))):
        raise TypeError(f"not a group key: {key!r}")
    return tta, selection


Observer = Callable[[int, float], None]  # (images in one explain call, its seconds)


class Batcher:
    """The queue and its worker thread (see the module's docstring); a context manager."""

    def __init__(
        self,
        explainers: Callable[[Hashable], Explainer],
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        observe: Observer | None = None,
    ) -> None:
        self._explainers = explainers
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._observe = observe
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="cam-rt-batcher", daemon=True)

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def depth(self) -> int:
        """Images waiting (not yet taken by the worker)."""
        return len(self._queue)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue all of ``jobs`` or none: QueueFull if they do not fit or the batcher closed."""
        with self._cond:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._queue) + len(jobs) > self.max_queue:
                raise QueueFull(
                    f"the queue is full ({len(self._queue)} of {self.max_queue} images wait): "
                    "retry later"
                )
            now = time.perf_counter()
            for job in jobs:
                job.queued = now
                self._queue.append(job)
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Take no more images; the worker explains those queued, then ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> Batcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> list[Job] | None:
        """The next batch (None once closed and empty)."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                if self._queue:
                    batch.append(self._queue.popleft())
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
        return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            started = time.perf_counter()
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            groups: dict[Hashable, list[Job]] = {}
            for job in live:
                job.queue_s = started - job.queued
                groups.setdefault(job.key, []).append(job)
            for key, jobs in groups.items():
                self._run(key, jobs)

    def _run(self, key: Hashable, jobs: list[Job]) -> None:
        start = time.perf_counter()
        try:
            explainer = self._explainers(key)
            labels = [job.labels for job in jobs]
            results, _ = explain_images(explainer, [job.image for job in jobs], labels)
        except BaseException as exc:  # never lose the worker: each waiting request gets it
            results = [exc if isinstance(exc, Exception) else RuntimeError(str(exc))] * len(jobs)
        seconds = time.perf_counter() - start
        if self._observe is not None:
            self._observe(len(jobs), seconds)
        for job, result in zip(jobs, results, strict=True):
            job.explain_s, job.batch = seconds, len(jobs)
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
