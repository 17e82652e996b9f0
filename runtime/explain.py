"""From images to maps: batching, TTA passes through the session, class selection, merging.

``Explainer(session, config).explain(images)`` returns one :class:`CamResult` per image. How
passes and images are grouped into runs, and so which input shapes a run feeds the model, is
planned in :mod:`cam_rt.runtime.plan`.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .backend.remote import SessionLike
from .classes import class_index, lookup_class
from .errors import ConfigError, InputError
from .maps.cam import gather_classes, probabilities
from .maps.images import DEFAULT_MAX_PIXELS, AlphaPolicy, as_image_list, prepare_image
from .maps.tta import (
    InputSize,
    Pass,
    TTAConfig,
    combine_maps,
    combine_scores,
    plan_passes,
    resize_input,
)
from .plan import image_chunks, oversized_input, run_groups

__all__ = [
    "CamResult",
    "ClassSelection",
    "ExplainConfig",
    "Explainer",
]

SelectMode = Literal["predicted", "all", "top-k", "fixed"]
Label = int | str


@dataclass(frozen=True, slots=True)
class ClassSelection:
    """Which classes to explain (``--classes predicted|all|top-K|LIST``).

    - ``predicted``: sigmoid >= ``threshold`` (multi-label), or the top-1 class (softmax);
    - ``all``: every class; ``top-k``: the ``k`` best scores;
    - ``fixed``: the same ``labels`` (ids or names) for every image.
    Per-image ground-truth labels passed to :meth:`Explainer.explain` take precedence.
    """

    mode: SelectMode = "predicted"
    k: int = 1
    threshold: float = 0.5
    labels: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or isinstance(self.k, bool):
            raise ConfigError(f"top-k needs an integer k, got {self.k!r}")
        if not isinstance(self.threshold, (int, float)):
            raise ConfigError(f"threshold {self.threshold!r} must be a number in [0, 1]")
        if self.mode not in ("predicted", "all", "top-k", "fixed"):
            raise ConfigError(
                f"class selection '{self.mode}' is unknown: use predicted, all, top-K or a list"
            )
        if self.k < 1:
            raise ConfigError(f"top-k needs k >= 1, got {self.k}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold {self.threshold} is outside [0, 1]")
        if self.mode == "fixed" and not self.labels:
            raise ConfigError("a fixed class selection needs labels, e.g. --classes cat,dog")

    @classmethod
    def parse(cls, text: str, threshold: float = 0.5) -> ClassSelection:
        """``predicted``, ``all``, ``top-3`` or a comma list of class ids or names."""
        value = text.strip()
        if value in ("predicted", "all"):
            return cls(mode=value, threshold=threshold)  # type: ignore[arg-type]
        match = re.fullmatch(r"top-?(\d+)", value)
        if match:
            return cls(mode="top-k", k=int(match.group(1)), threshold=threshold)
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise ConfigError(f"--classes '{text}' is empty: use predicted, all, top-K or a list")
        labels: tuple[Label, ...] = tuple(int(v) if v.isdigit() else v for v in items)
        return cls(mode="fixed", labels=labels, threshold=threshold)


@dataclass(frozen=True, slots=True)
class ExplainConfig:
    """What to compute: TTA (``None`` = plain CAM), classes, batching, alpha handling, and the
    size images are resized to before the network (``input_size``, see :class:`InputSize`:
    by default the model's trained size when the file records it, else the image's own)."""

    tta: TTAConfig | None = None
    classes: ClassSelection = field(default_factory=ClassSelection)
    batch_size: int = 8
    alpha: AlphaPolicy = "error"
    #: Run a scale's flipped and unflipped inputs as one batch: fewer, larger runs, which pays
    #: on GPUs; on this CPU a batch of two 320x320 images took 20% longer than two runs.
    #: None (default): batched when the session runs on CUDA or TensorRT.
    batch_flips: bool | None = None
    #: Round every pass's input size to a multiple of this many pixels (0: off), so a dataset
    #: makes few distinct shapes (GPU search/engine caches); maps still come at image size.
    bucket: int = 0
    input_size: InputSize = field(default_factory=InputSize)
    #: The most pixels one model input may have (``--max-pixels``): an image whose largest
    #: TTA input (after buckets) would be larger is refused (InputError) before any resize.
    max_input_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, InputSize):
            raise ConfigError(
                f"input_size {self.input_size!r} must be an InputSize, e.g. "
                "InputSize.parse('model')"
            )
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool):
            raise ConfigError(f"batch_size {self.batch_size!r} must be an integer >= 1")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size {self.batch_size} must be >= 1")
        if self.batch_flips not in (None, True, False):
            raise ConfigError(
                f"batch_flips {self.batch_flips!r} must be None (auto), True or False"
            )
        bucket = self.bucket
        if not isinstance(bucket, int) or isinstance(bucket, bool) or bucket < 0:
            raise ConfigError(f"bucket {bucket!r} must be an integer >= 0 (0: off), e.g. 32")
        if self.alpha not in ("error", "drop"):
            raise ConfigError(f"alpha '{self.alpha}' is unknown: use error or drop")
        limit = self.max_input_pixels
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(
                f"max_input_pixels {limit!r} must be an integer >= 1 (--max-pixels), e.g. "
                f"{DEFAULT_MAX_PIXELS}"
            )


@dataclass(frozen=True, slots=True)
class CamResult:
    """The maps of one image.

    - ``scores``: (L,) float32 pre-activation class scores (TTA-combined);
    - ``probabilities``: (L,) float32, sigmoid or softmax of ``scores``;
    - ``class_ids`` / ``class_names``: the C classes explained, in map channel order;
    - ``maps``: (H, W, C) float32 in [0, 1] at the input image's resolution.
    """

    scores: np.ndarray
    probabilities: np.ndarray
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    maps: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.maps.shape[0]), int(self.maps.shape[1]))


Timings = MutableMapping[str, float]


@contextmanager
def _stage(timings: Timings | None, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


class Explainer:
    """Computes CAMs for images with one :class:`CamSession` (or any :class:`SessionLike`, such
    as a :class:`RemoteSession` around a Triton server); thread-safe like the session."""

    def __init__(self, session: SessionLike, config: ExplainConfig | None = None) -> None:
        self.session = session
        self.config = config or ExplainConfig()
        self.passes: tuple[Pass, ...] = plan_passes(self.config.tta)
        flips = self.config.batch_flips
        self.batch_flips: bool = session.on_gpu if flips is None else flips
        self._index = class_index(session.class_names)
        where = str(getattr(session, "path", "the model"))
        self.config.input_size.check(session.metadata, self.config.tta, self.config.bucket, where)
        if self.config.classes.mode == "fixed":
            self._fixed = self.resolve_labels(self.config.classes.labels)

    def resolve_labels(self, labels: Sequence[Label]) -> tuple[int, ...]:
        """Class ids of ``labels`` (ids or names), deduplicated, in the given order; a name that
        several classes share is refused (ConfigError listing their ids): give the id."""
        names = self.session.class_names
        out: list[int] = []
        for label in labels:
            if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
                cid = int(label)
                if not 0 <= cid < len(names):
                    raise ConfigError(
                        f"class id {cid} is out of range: the model has {len(names)} classes "
                        f"(0..{len(names) - 1})"
                    )
            else:
                cid = lookup_class(str(label), self._index)
            if cid not in out:
                out.append(cid)
        return tuple(out)

    def _select(self, scores: np.ndarray, probs: np.ndarray) -> tuple[int, ...]:
        sel = self.config.classes
        if sel.mode == "all":
            return tuple(range(len(scores)))
        if sel.mode == "fixed":
            return self._fixed
        if sel.mode == "top-k":
            order = np.argsort(-scores, kind="stable")[: sel.k]
            return tuple(int(i) for i in order)
        if self.session.metadata.activation == "softmax":
            return (int(np.argmax(scores)),)
        return tuple(int(i) for i in np.flatnonzero(probs >= sel.threshold))

    def explain(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        labels: Sequence[Sequence[Label]] | None = None,
        timings: Timings | None = None,
    ) -> list[CamResult]:
        """Maps for one image or a batch (mixed sizes allowed).

        ``labels``: per-image ground-truth classes (ids or names), one sequence per image.
        ``timings``: if given, seconds per stage are added to it: ``prepare`` (checks, alpha),
        ``resize_input`` (TTA input resizes and flips), ``preprocess``, ``onnxruntime`` and
        ``cam_weighting`` (see :meth:`CamSession.run`), ``select`` (scores, classes),
        ``tta_resize`` (maps flipped back, resized and summed) and ``normalize``.
        """
        cfg = self.config
        with _stage(timings, "prepare"):
            items = as_image_list(images)
            prepared = [prepare_image(img, i, cfg.alpha) for i, img in enumerate(items)]
            if labels is not None:
                if isinstance(labels, (str, bytes)) or any(
                    isinstance(lab, (str, bytes)) or not isinstance(lab, Sequence) for lab in labels
                ):
                    raise InputError(
                        "labels must hold one list per image, e.g. [['cat', 'dog'], [7]]"
                    )
                if len(labels) != len(prepared):
                    raise InputError(f"{len(labels)} label lists for {len(prepared)} images")
            chosen = [self.resolve_labels(lab) for lab in labels] if labels is not None else None
            stride = self.session.output_stride
            meta = self.session.metadata
            targets = [cfg.input_size.target(img.shape[0], img.shape[1], meta) for img in prepared]
            for i, (img, target) in enumerate(zip(prepared, targets, strict=True)):
                if stride and min(target) < stride:
                    what = f"is {img.shape[0]}x{img.shape[1]} pixels"
                    if target != img.shape[:2]:
                        what = f"would run at {target[0]}x{target[1]} (input size {cfg.input_size})"
                    raise InputError(
                        f"image {i} {what}, smaller than the model's output stride {stride}: "
                        f"use inputs of at least {stride}x{stride}"
                    )
                problem = oversized_input(cfg, (img.shape[0], img.shape[1]), target, f"image {i}")
                if problem:
                    raise InputError(problem)
        mode = cfg.tta.mode if cfg.tta is not None else None
        # Each distinct (scale, flip) pass runs once (keras-explainable's repeated unscaled
        # passes reuse the same output); a scale's flipped twin shares its batch.
        unique = list(dict.fromkeys(self.passes))
        # outputs[pass][image] = (scores (L,), maps (h, w, L)), filled batch by batch.
        outputs: dict[Pass, list[tuple[np.ndarray, np.ndarray] | None]] = {
            p: [None] * len(prepared) for p in unique
        }
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, target in enumerate(targets):  # one target size: the same input shapes
            groups[target].append(i)
        for members in groups.values():
            for twins in run_groups(unique, self.batch_flips):
                for chunk in image_chunks(members, cfg.batch_size, len(twins)):
                    jobs = [(i, p) for i in chunk for p in twins]
                    with _stage(timings, "resize_input"):
                        batch = np.stack(
                            [
                                resize_input(prepared[i], p, mode, cfg.bucket, targets[i])
                                for i, p in jobs
                            ]
                        )
                    scores, maps = self.session.run(batch, timings)
                    for row, (i, p) in enumerate(jobs):
                        outputs[p][i] = (scores[row], maps[row])
        results: list[CamResult] = []
        for i, img in enumerate(prepared):
            with _stage(timings, "select"):
                per_pass = [_filled(outputs[p][i]) for p in self.passes]
                scores = combine_scores(np.stack([s for s, _ in per_pass]), cfg.tta)
                probs = probabilities(scores, self.session.metadata.activation)
                ids = chosen[i] if chosen is not None else self._select(scores, probs)
                low = [gather_classes(m, ids) for _, m in per_pass]
            size = (img.shape[0], img.shape[1])
            maps = combine_maps(low, self.passes, size, cfg.tta, timings)
            results.append(
                CamResult(
                    scores=scores,
                    probabilities=probs,
                    class_ids=ids,
                    class_names=tuple(self.session.class_names[c] for c in ids),
                    maps=maps,
                )
            )
        return results


def _filled(item: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    assert item is not None, "every (pass, image) is run before merging"
    return item
