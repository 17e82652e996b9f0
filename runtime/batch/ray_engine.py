"""``cam-rt run --engine ray``: the same inputs, options and outputs as a local run, with the
model run by a pool of Ray actors (one cam-rt session each), on this machine or a cluster.

Ray Data takes the image list; each actor decodes its batch and explains it with the run's
decode and explain steps (a failed image is returned as an error, never raised); the results
stream back to the driver, which renders, writes and records them with the local run's frame
(:func:`~cam_rt.runtime.batch.runner.run_pipeline`): the same files, written atomically, and
the same ``results.jsonl`` (so ``--skip-existing`` resumes either engine's run), and the same
one-writer lock on the output folder, held while the actors work. An actor that dies is
restarted and its batch retried by Ray; the driver writes each image once, whatever comes back
twice. The driver never opens the model: it reads the file's metadata (class names,
output kind, input size) without ONNX Runtime. Needs the ``ray`` extra
(``pip install 'cam-rt[ray]'``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backend.onnx_file import read_metadata
from ..backend.session import CamSession, SessionConfig
from ..errors import ConfigError, InputError, MissingDependencyError
from ..explain import CamResult, ExplainConfig, Explainer, Label
from ..metadata import ModelMetadata
from .inputs import InputItem, labels_for
from .io import LoadedImage
from .records import Events, RunSummary
from .runner import RunConfig, Writer, run_pipeline
from .steps import Explained, decode, explain_images, failure

__all__ = ["CamActor", "RayConfig", "RayRunner", "explained_row"]


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


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


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

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Columns per row: ``index``, ``error`` ("" if explained), ``decode_s``,
        ``explain_s``, ``conversions`` (JSON), and the result's arrays (None on error)."""
        n = len(batch["index"])
        errors: list[str] = [""] * n
        loaded: list[LoadedImage | None] = [None] * n
        decode_s = [0.0] * n
        for i, path in enumerate(batch["path"]):
            try:
                loaded[i], decode_s[i] = decode(Path(str(path)), self.max_pixels)
            except Exception as exc:  # whatever the decoder raised: this image's error
                errors[i] = _message(failure(exc, "decoding"))
        ok = [i for i in range(n) if loaded[i] is not None]
        images = [image for image in loaded if image is not None]
        labels = [json.loads(str(batch["labels"][i])) for i in ok]
        results, share = explain_images(self.explainer, images, labels)
        columns: dict[str, list[Any]] = {
            k: [None] * n
            for k in ("scores", "probabilities", "class_ids", "class_names", "maps", "pixels")
        }
        conversions: list[str] = ["[]"] * n
        for i, image, result in zip(ok, images, results, strict=True):
            if isinstance(result, Exception):
                errors[i] = _message(result)
                continue
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


class _ModelFile:
    """The driver's view of the model, from the file's metadata: enough for an
    :class:`Explainer` to check the options and labels; it never runs the model."""

    def __init__(self, path: Path, metadata: ModelMetadata) -> None:
        self.path = path
        self.metadata = metadata
        self.class_names = metadata.class_names
        self.output_stride = metadata.output_stride
        self.on_gpu = False

    def run(
        self, batch: np.ndarray, timings: MutableMapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        raise ConfigError("the Ray driver does not run the model: its actors do")


class RayRunner:
    """Runs a model file over image files on Ray actors; files are written here (the driver).

    ``explain``: the :class:`ExplainConfig` (an :class:`Explainer` on a :class:`CamSession`
    is accepted for its configs, but then the caller has opened the model the driver does not
    need); ``session_config``: how each actor opens the model. The driver reads only the
    file's metadata, to refuse options and labels the model cannot take (ConfigError) before
    any work.
    """

    def __init__(
        self,
        model: str | Path,
        explain: ExplainConfig | Explainer,
        outdir: Path,
        config: RunConfig | None = None,
        labels: Mapping[str, Sequence[Label]] | None = None,
        events: Events | None = None,
        ray_config: RayConfig | None = None,
        actor: type = CamActor,
        session_config: SessionConfig | None = None,
    ) -> None:
        if isinstance(explain, Explainer):
            if not isinstance(explain.session, CamSession):
                raise ConfigError("--engine ray needs a model file (a local CamSession) to ship")
            session_config = session_config or explain.session.config
            explain = explain.config
        self.model = Path(model).resolve()
        self.explain_config = explain
        self.session_config = session_config or SessionConfig()
        self.outdir = Path(outdir)
        self.config = config or RunConfig()
        self.labels = labels
        self.events = events
        self.ray_config = ray_config or RayConfig()
        self.images_per_call = self.config.per_call(explain.batch_size)
        self._actor = actor
        self.metadata = read_metadata(self.model)
        checker = Explainer(_ModelFile(self.model, self.metadata), explain)
        for values in (labels or {}).values():
            checker.resolve_labels(values)

    def run(self, items: Sequence[InputItem]) -> RunSummary:
        """Process ``items``; returns the summary (``interrupted`` after Ctrl-C / SIGTERM).
        ConfigError first (before Ray starts) for a ``--save`` kind that cannot work with the
        model."""
        names = self.metadata.class_names
        return run_pipeline(items, self.outdir, self.config, self.explain_all, self.events, names)

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
        with warnings.catch_warnings():
            # Ray 2.60 deprecates extra remote args (removed in 2.64, hence the pin), yet they
            # are the only way to bound restarts (Ray Data's default is forever: an image that
            # kills its worker every time would never end the run).
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return ray.data.from_items(rows).map_batches(
                self._actor,
                fn_constructor_kwargs={
                    "model": str(self.model),
                    "session_config": self.session_config,
                    "explain_config": self.explain_config,
                    "max_pixels": self.config.max_pixels,
                },
                batch_size=self.images_per_call,  # rows per actor call
                batch_format="numpy",
                compute=ActorPoolStrategy(size=cfg.num_workers),
                num_cpus=cfg.cpus_per_worker,
                num_gpus=cfg.gpus_per_worker,
                max_restarts=cfg.max_restarts,
                max_task_retries=cfg.max_restarts,
            )

    def explain_all(self, todo: Sequence[InputItem], writer: Writer) -> None:
        """The Ray engine: the actors decode and explain; each result goes to ``writer``."""
        rows, items = [], {}
        for i, item in enumerate(todo):
            try:
                labels = labels_for(item, self.labels)
            except Exception as exc:
                writer.failed(item, exc, "finding its labels")
                continue
            items[i] = item
            rows.append({"index": i, "path": str(item.path), "labels": json.dumps(labels)})
        if not rows:
            return
        seen: set[int] = set()
        for row in self._dataset(rows).iter_rows():
            index = int(row["index"])
            if index in seen:  # a retried batch: written once
                continue
            seen.add(index)
            if row["error"]:
                writer.failed(items[index], InputError(str(row["error"])))
                continue
            try:
                explained = explained_row(items[index], row)
            except Exception as exc:  # a row that does not make a result: this image only
                writer.failed(items[index], exc, "receiving the result")
                continue
            writer.put(explained)


def explained_row(item: InputItem, row: Mapping[str, Any]) -> Explained:
    """What the writer takes, from one row an actor returned."""
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
    timings = {
        "decode_s": round(float(row["decode_s"]), 6),
        "explain_s": round(float(row["explain_s"]), 6),
    }
    return Explained(item, result, loaded, timings)
