"""``cam-rt run --engine ray``: the same inputs, options and outputs as a local run, with the
model run by a pool of Ray actors (one cam-rt session each), on this machine or a cluster.

Ray Data takes the image list; each actor decodes its batch and explains it (a failed image is
returned as an error, never raised); the results stream back to the driver, which writes them
with the local runner's own writers: the same files, written atomically, and the same
``results.jsonl`` (so ``--skip-existing`` resumes either engine's run). An actor that dies is
restarted and its batch retried by Ray; the driver writes each image once, whatever comes back
twice. Needs the ``ray`` extra (``pip install 'cam-rt[ray]'``).
"""

from __future__ import annotations

import json
import time
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CamRtError, ConfigError, InputError, MissingDependencyError
from .explain import CamResult, ExplainConfig, Explainer, Label
from .io import LoadedImage, read_image
from .runner import Events, InputItem, RunConfig, Runner, RunSummary
from .session import CamSession, SessionConfig

__all__ = ["RayConfig", "RayRunner"]


@dataclass(frozen=True, slots=True)
class RayConfig:
    """``--ray-address``, ``--num-workers``, ``--gpus-per-worker``."""

    address: str = ""  # "": start a local Ray instance; "auto" or "ray://host:10001": join one
    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_restarts: int = 3  # per actor; its unfinished batch is retried after a restart

    def __post_init__(self) -> None:
        if not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ConfigError(f"--num-workers {self.num_workers} must be an integer >= 1")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ConfigError("--gpus-per-worker must be >= 0 and CPUs per worker > 0")
        if self.max_restarts < 0:
            raise ConfigError(f"max_restarts {self.max_restarts} must be >= 0")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", "ray", "--engine ray") from exc
    return ray


class CamActor:
    """One Ray actor: a cam-rt session; decodes and explains a batch of image paths."""

    def __init__(
        self,
        model: str,
        session_config: SessionConfig,
        explain_config: ExplainConfig,
        max_pixels: int,
    ) -> None:
        self.explainer = Explainer(CamSession(model, session_config), explain_config)
        self.max_pixels = max_pixels

    def _explain(self, pictures: list[np.ndarray], labels: list[Any]) -> list[CamResult | str]:
        """The batch at once; if it fails, image by image (one bad image fails alone)."""
        use = None if all(v is None for v in labels) else [v or () for v in labels]
        try:
            return list(self.explainer.explain(pictures, labels=use))
        except (CamRtError, MemoryError) as exc:
            if len(pictures) == 1:
                return [str(exc) or type(exc).__name__]
        out: list[CamResult | str] = []
        for picture, label in zip(pictures, labels, strict=True):
            try:
                one = None if label is None else [label]
                out.append(self.explainer.explain(picture, labels=one)[0])
            except (CamRtError, MemoryError) as exc:
                out.append(str(exc) or type(exc).__name__)
        return out

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["index"])
        errors: list[str] = [""] * n
        loaded: list[LoadedImage | None] = [None] * n
        decode_s = [0.0] * n
        for i, path in enumerate(batch["path"]):
            start = time.perf_counter()
            try:
                loaded[i] = read_image(Path(str(path)), self.max_pixels)
            except (CamRtError, MemoryError) as exc:
                errors[i] = str(exc) or type(exc).__name__
            decode_s[i] = time.perf_counter() - start
        ok = [i for i in range(n) if loaded[i] is not None]
        labels = [json.loads(str(batch["labels"][i])) for i in ok]
        start = time.perf_counter()
        results = self._explain([loaded[i].pixels for i in ok], labels) if ok else []  # type: ignore[union-attr]
        share = (time.perf_counter() - start) / max(1, len(ok))
        columns: dict[str, list[Any]] = {
            k: [None] * n
            for k in ("scores", "probabilities", "class_ids", "class_names", "maps", "pixels")
        }
        conversions: list[str] = ["[]"] * n
        for i, result in zip(ok, results, strict=True):
            if isinstance(result, str):
                errors[i] = result
                continue
            image = loaded[i]
            assert image is not None
            columns["scores"][i] = result.scores
            columns["probabilities"][i] = result.probabilities
            columns["class_ids"][i] = np.asarray(result.class_ids, np.int64)
            columns["class_names"][i] = json.dumps(list(result.class_names))
            columns["maps"][i] = result.maps
            columns["pixels"][i] = image.pixels
            conversions[i] = json.dumps(list(image.conversions))

        def objects(values: list[Any]) -> np.ndarray:
            out = np.empty(n, dtype=object)
            out[:] = values
            return out

        return {
            "index": np.asarray(batch["index"], np.int64),
            "error": np.asarray(errors, dtype=object),
            "conversions": np.asarray(conversions, dtype=object),
            "decode_s": np.asarray(decode_s, np.float64),
            "explain_s": np.full(n, share, np.float64),
            **{k: objects(v) for k, v in columns.items()},
        }


class RayRunner(Runner):
    """:class:`Runner` whose inference runs on Ray actors; files are written here."""

    def __init__(
        self,
        model: str | Path,
        explainer: Explainer,
        outdir: Path,
        config: RunConfig | None = None,
        labels: Mapping[str, Sequence[Label]] | None = None,
        events: Events | None = None,
        ray_config: RayConfig | None = None,
        actor: type = CamActor,
    ) -> None:
        super().__init__(explainer, outdir, config, labels, events)
        if not isinstance(explainer.session, CamSession):
            raise ConfigError("--engine ray needs a model file (a local CamSession) to ship")
        self.model = str(Path(model).resolve())
        self.ray_config = ray_config or RayConfig()
        self._actor = actor

    def _dataset(self, rows: list[dict[str, Any]]) -> Any:
        ray = _ray()
        cfg = self.ray_config
        if not ray.is_initialized():
            ray.init(
                address=cfg.address or None,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        from ray.data import ActorPoolStrategy, DataContext

        DataContext.get_current().enable_progress_bars = False
        session = self.explainer.session
        assert isinstance(session, CamSession)
        with warnings.catch_warnings():
            # Ray 2.60 deprecates extra remote args (removed in 2.64, hence the pin), yet they
            # are the only way to bound restarts (Ray Data's default is forever: an image that
            # kills its worker every time would never end the run).
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return ray.data.from_items(rows).map_batches(
                self._actor,
                fn_constructor_kwargs={
                    "model": self.model,
                    "session_config": session.config,
                    "explain_config": self.explainer.config,
                    "max_pixels": self.config.max_pixels,
                },
                batch_size=self.batch_size,
                batch_format="numpy",
                compute=ActorPoolStrategy(size=cfg.num_workers),
                num_cpus=cfg.cpus_per_worker,
                num_gpus=cfg.gpus_per_worker,
                max_restarts=cfg.max_restarts,
                max_task_retries=cfg.max_restarts,
            )

    def _process(self, todo: Sequence[InputItem], summary: RunSummary, journal: Any) -> None:
        rows, items = [], {}
        for i, item in enumerate(todo):
            try:
                labels = self._labels_for(item)
            except CamRtError as exc:
                self._record_error(item, exc, summary, journal)
                continue
            items[i] = item
            rows.append({"index": i, "path": str(item.path), "labels": json.dumps(labels)})
        if not rows:
            return
        seen: set[int] = set()
        writes: deque[tuple[InputItem, Future[dict[str, Any]]]] = deque()
        with ThreadPoolExecutor(
            self.config.write_workers, thread_name_prefix="cam-rt-write"
        ) as write:
            try:
                for row in self._dataset(rows).iter_rows():
                    index = int(row["index"])
                    if index in seen:  # a retried batch: written once
                        continue
                    seen.add(index)
                    item = items[index]
                    if row["error"]:
                        self._record_error(item, InputError(str(row["error"])), summary, journal)
                        continue
                    self._queue_write(write, writes, _job(item, row), summary, journal)
                self._drain(writes, summary, journal)
            except KeyboardInterrupt:
                self._drain(writes, summary, journal, interrupted=True)
                raise


def _job(
    item: InputItem, row: Mapping[str, Any]
) -> tuple[InputItem, CamResult, LoadedImage, dict[str, float]]:
    """What the local writers take, from one row an actor returned."""
    result = CamResult(
        scores=np.asarray(row["scores"], np.float32),
        probabilities=np.asarray(row["probabilities"], np.float32),
        class_ids=tuple(int(c) for c in row["class_ids"]),
        class_names=tuple(json.loads(str(row["class_names"]))),
        maps=np.asarray(row["maps"], np.float32),
    )
    loaded = LoadedImage(
        np.asarray(row["pixels"], np.uint8), tuple(json.loads(str(row["conversions"])))
    )
    timing = {
        "decode_s": round(float(row["decode_s"]), 6),
        "explain_s": round(float(row["explain_s"]), 6),
    }
    return item, result, loaded, timing
