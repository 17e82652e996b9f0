"""CAM seed quality against ground-truth masks, as OC-CSE's ``evaluation.py`` scores it.

Seeds: per pixel, a constant background score t competes with the normalised maps (in [0, 1])
of the image's classes; the label is the argmax, background winning ties. Pixels
labelled 255 are ignored. ``IoU_c = TP / (T + P - TP + 1e-10)`` over the whole set, and mIoU is
the mean over all classes including background, as OC-CSE computes it (a class absent from both
the masks and the predictions counts as 0; the report names such classes). The background
threshold t is swept (0.10, 0.11, ..., 0.39 by default; at most 1000 thresholds) and the best t
is reported. An image, or mask, that cannot be used is reported with what was wrong (an event
and ``EvalReport.failed``) and left out; the others are scored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..batch.io import IMAGE_SUFFIXES, open_image, read_image
from ..errors import CamRtError, ConfigError, InputError
from ..explain import CamResult, Explainer

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_THRESHOLDS",
    "EvalItem",
    "EvalReport",
    "SeedScorer",
    "iou_from_confusion",
    "parse_thresholds",
    "read_mask",
    "voc_items",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.10 + 0.01 * i, 2) for i in range(30))
#: The most thresholds one sweep takes: each keeps an (n, n) int64 confusion matrix and a pass
#: over every pixel.
MAX_THRESHOLDS = 1000
IGNORE = 255


def _too_many(count: int, what: str) -> ConfigError:
    return ConfigError(
        f"{what} gives {count} thresholds; at most {MAX_THRESHOLDS} are swept (each keeps a "
        "confusion matrix): use a coarser step, e.g. 0.10:0.40:0.01"
    )


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``0.10:0.40:0.01`` (start:stop:step, stop excluded) or a comma list (``--thresholds``);
    a range is counted before it is built, so a huge one is refused at once."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not all(map(math.isfinite, (start, stop, step))) or step <= 0 or stop <= start:
                raise ValueError
            count = math.ceil((stop - start) / step - 1e-9)
            if count > MAX_THRESHOLDS:
                raise _too_many(count, f"--thresholds '{text}'")
            return tuple(round(start + i * step, 6) for i in range(count))
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(
            f"--thresholds '{text}' is not START:STOP:STEP or a list, e.g. 0.10:0.40:0.01"
        ) from None
    if len(values) > MAX_THRESHOLDS:
        raise _too_many(len(values), f"--thresholds '{text[:40]}...'")
    return values


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU from an (n, n) confusion matrix (rows ground truth, columns prediction)."""
    tp = np.diag(confusion).astype(np.float64)
    t = confusion.sum(axis=1).astype(np.float64)
    p = confusion.sum(axis=0).astype(np.float64)
    iou: np.ndarray = tp / (t + p - tp + 1e-10)
    return iou


class SeedScorer:
    """Accumulates confusion matrices of seeds at every threshold over a set of images."""

    def __init__(self, num_labels: int, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> None:
        if not thresholds:
            raise ConfigError("thresholds is empty: give at least one background threshold")
        if len(thresholds) > MAX_THRESHOLDS:
            raise _too_many(len(thresholds), "--thresholds")
        if any(not 0.0 <= t <= 1.0 for t in thresholds):
            raise ConfigError(f"thresholds must lie in [0, 1]; got {list(thresholds)}")
        self.n = num_labels
        self.thresholds = tuple(float(t) for t in thresholds)
        self.confusion = np.zeros((len(self.thresholds), self.n, self.n), np.int64)
        self.images = 0
        #: Per image: name, mIoU (classes in its mask or seeds) and wrong pixels per threshold.
        self._per_image: list[tuple[str, np.ndarray, np.ndarray]] = []

    def add(
        self, maps: np.ndarray, class_ids: Sequence[int], mask: np.ndarray, name: str = ""
    ) -> None:
        """One image: maps (H, W, C) in [0, 1] of ``class_ids``; mask (H, W) labels 0..n-1, 255.
        ``name``: the image's, for :attr:`EvalReport.per_image`."""
        if maps.shape[:2] != mask.shape:
            raise InputError(f"maps {maps.shape[:2]} and mask {mask.shape} differ in size")
        valid = mask != IGNORE
        gt = mask[valid].astype(np.int64)
        if gt.size and gt.max() >= self.n:
            raise InputError(
                f"mask has label {int(gt.max())} but the model knows {self.n - 1} classes"
            )
        if len(class_ids):
            labels = np.asarray(class_ids, np.int64) + 1
            best = maps.max(axis=2)[valid]
            winner = labels[maps.argmax(axis=2)[valid]]
        else:
            best = np.zeros(gt.shape, np.float32)
            winner = np.zeros(gt.shape, np.int64)
        ious = np.zeros(len(self.thresholds))
        wrong = np.zeros(len(self.thresholds))
        for i, t in enumerate(self.thresholds):
            pred = np.where(best > t, winner, 0)  # the background wins ties
            one = np.bincount(gt * self.n + pred, minlength=self.n * self.n).reshape(self.n, self.n)
            self.confusion[i] += one
            seen = one.sum(axis=0) + one.sum(axis=1) > 0
            ious[i] = float(iou_from_confusion(one)[seen].mean()) if seen.any() else 1.0
            wrong[i] = (gt.size - np.trace(one)) / max(gt.size, 1)
        self._per_image.append((name or f"#{self.images}", ious, wrong))
        self.images += 1

    def report(self, class_names: Sequence[str]) -> EvalReport:
        ious = np.stack([iou_from_confusion(c) for c in self.confusion])
        mious = ious.mean(axis=1)
        best = int(np.argmax(mious))
        names = ("background", *class_names)
        present = self.confusion[best].sum(axis=1) + self.confusion[best].sum(axis=0) > 0
        return EvalReport(
            images=self.images,
            best_threshold=self.thresholds[best],
            miou=float(mious[best]),
            per_class={names[c]: float(ious[best, c]) for c in range(self.n)},
            by_threshold={t: float(m) for t, m in zip(self.thresholds, mious, strict=True)},
            absent=tuple(names[c] for c in range(self.n) if not present[c]),
            per_image=tuple((n, float(i[best]), float(w[best])) for n, i, w in self._per_image),
        )


@dataclass(frozen=True)
class EvalReport:
    """The result: best threshold and its mIoU, per-class IoU there, mIoU at every threshold."""

    images: int
    best_threshold: float
    miou: float
    per_class: Mapping[str, float]
    by_threshold: Mapping[float, float]
    absent: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    #: (name, error) of each item left out because its image or mask could not be used.
    failed: tuple[tuple[str, str], ...] = ()
    #: (name, mIoU over the classes of its mask and seeds, wrong fraction of its pixels) of
    #: each image scored, at the best threshold.
    per_image: tuple[tuple[str, float, float], ...] = ()

    def worst(self, count: int = 20) -> list[tuple[str, float, float]]:
        """The ``count`` images of lowest IoU (most wrong pixels first among equals)."""
        return sorted(self.per_image, key=lambda r: (r[1], -r[2], r[0]))[:count]

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "best_threshold": self.best_threshold,
            "miou": round(self.miou, 6),
            "per_class_iou": {k: round(v, 6) for k, v in self.per_class.items()},
            "miou_by_threshold": {f"{t:.2f}": round(m, 6) for t, m in self.by_threshold.items()},
            "classes_absent": list(self.absent),
            "failed": [{"name": name, "error": error} for name, error in self.failed],
            "worst_images": [
                {"name": n, "miou": round(i, 6), "wrong_pixels": round(w, 6)}
                for n, i, w in self.worst()
            ],
            **self.extra,
        }

    def table(self) -> str:
        lines = [f"{'class':<16} IoU (t = {self.best_threshold:.2f})"]
        lines += [f"{name:<16} {100 * v:6.2f}" for name, v in self.per_class.items()]
        lines.append(f"{'mIoU':<16} {100 * self.miou:6.2f}  ({self.images} images)")
        if self.absent:
            lines.append(f"absent from masks and predictions (IoU 0): {', '.join(self.absent)}")
        if self.failed:
            name, error = self.failed[0]
            lines.append(
                f"{len(self.failed)} images failed and were not scored; first {name}: {error}"
            )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class EvalItem:
    name: str
    image: Path
    mask: Path


def read_mask(path: Path) -> np.ndarray:
    """A label mask: a palette/grayscale PNG read as its indices (H, W) uint8 (InputError for
    what :func:`~cam_rt.runtime.batch.io.open_image` refuses, and for other image modes)."""
    with open_image(path) as im:
        if im.mode not in ("P", "L"):
            raise InputError(
                f"mask {path} is a {im.mode} image; expected a palette or grayscale PNG of "
                "class indices (VOC SegmentationClass)"
            )
        return np.asarray(im, dtype=np.uint8).copy()


def _find_image(folder: Path, name: str) -> Path:
    for suffix in (".jpg", *IMAGE_SUFFIXES):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    raise InputError(f"no image for '{name}' in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")


def voc_items(
    images: Path, masks: Path, split: Path | None = None, names: Sequence[str] | None = None
) -> list[EvalItem]:
    """Items from an image folder, a mask folder and a split file (one id per line); without a
    split, every mask in ``masks``."""
    for folder, what in ((images, "images"), (masks, "masks")):
        if not folder.is_dir():
            raise InputError(f"{what} folder {folder} does not exist")
    if names is None:
        if split is not None:
            if not split.is_file():
                raise InputError(f"split file {split} does not exist")
            names = [line.split()[0] for line in split.read_text().splitlines() if line.strip()]
        else:
            names = sorted(p.stem for p in masks.glob("*.png"))
    if not names:
        raise InputError("no images to evaluate: the split is empty")
    items = []
    for name in names:
        mask = masks / f"{name}.png"
        if not mask.is_file():
            raise InputError(f"no mask {mask} for '{name}'")
        items.append(EvalItem(name, _find_image(images, name), mask))
    return items


@dataclass(frozen=True, slots=True)
class _Ready:
    """An item whose image and mask were read and agree: what the explain step takes."""

    item: EvalItem
    picture: np.ndarray
    mask: np.ndarray
    labels: list[int | str] | None


def _read(item: EvalItem, classes: int, labels: Sequence[int | str] | None) -> _Ready:
    """The image and mask of ``item``, checked against each other and the model's classes."""
    picture = read_image(item.image).pixels
    mask = read_mask(item.mask)
    if picture.shape[:2] != mask.shape:
        raise InputError(f"image {item.image} is {picture.shape[:2]} but its mask is {mask.shape}")
    found = [int(c) for c in np.unique(mask) if c != IGNORE]
    if found and found[-1] > classes:
        raise InputError(
            f"mask {item.mask} has label {found[-1]} (class id {found[-1] - 1}), but the model "
            f"has {classes} classes (labels 1..{classes}; 0 is background, {IGNORE} ignored): "
            "check that the masks go with this model"
        )
    chosen: list[int | str] = (
        list(labels) if labels is not None else [c - 1 for c in found if c > 0]
    )
    return _Ready(item, picture, mask, chosen)


def _message(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "not enough memory for this image: lower --batch-size"
    return str(exc)


def _explain(explainer: Explainer, ready: Sequence[_Ready]) -> list[CamResult | BaseException]:
    """One result per item: the items in one call, or if that fails, each alone."""
    labels = None if ready[0].labels is None else [r.labels or [] for r in ready]
    try:
        return list(explainer.explain([r.picture for r in ready], labels=labels))
    except (CamRtError, MemoryError) as exc:
        if len(ready) == 1:
            return [exc]
    out: list[CamResult | BaseException] = []
    for r in ready:
        try:
            out.append(explainer.explain(r.picture, None if r.labels is None else [r.labels])[0])
        except (CamRtError, MemoryError) as exc:
            out.append(exc)
    return out


def evaluate(
    explainer: Explainer,
    items: Sequence[EvalItem],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    predicted_labels: bool = False,
    labels: Mapping[str, Sequence[int | str]] | None = None,
    events: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> EvalReport:
    """Score the CAM seeds of ``items``. Classes come from the ground-truth masks (OC-CSE),
    from ``labels`` when given, or from the model's predictions with ``predicted_labels``.

    An item whose image or mask is unusable (unreadable, sizes differ, labels the model does
    not have) or that fails to explain is reported (a ``failed`` event, ``report.failed``)
    and left out; InputError if no item could be scored."""
    names = explainer.session.class_names
    scorer = SeedScorer(len(names) + 1, thresholds)
    say = events or (lambda _k, _d: None)
    say("start", {"total": len(items), "skipped": 0})
    failed: list[tuple[str, str]] = []

    def fail(item: EvalItem, exc: BaseException) -> None:
        failed.append((item.name, _message(exc)))
        say("failed", {"record": {"name": item.name, "error": failed[-1][1]}})

    batch = max(1, explainer.config.batch_size // 2)
    for start in range(0, len(items), batch):
        ready: list[_Ready] = []
        for item in items[start : start + batch]:
            try:
                if labels is not None and item.name not in labels:
                    raise InputError(f"no labels for '{item.name}' in the labels given")
                given = labels[item.name] if labels is not None else None
                ready.append(_read(item, len(names), given))
            except (CamRtError, MemoryError) as exc:
                fail(item, exc)
        if predicted_labels:
            ready = [_Ready(r.item, r.picture, r.mask, None) for r in ready]
        results = _explain(explainer, ready) if ready else []
        for r, result in zip(ready, results, strict=True):
            if isinstance(result, BaseException):
                fail(r.item, result)
                continue
            scorer.add(result.maps, result.class_ids, r.mask, r.item.name)
            say("done", {"record": {"name": r.item.name}})
    if not scorer.images:
        name, error = failed[0] if failed else ("-", "no items")
        raise InputError(
            f"no image could be scored: all {len(failed)} failed, first {name}: {error}"
        )
    report = scorer.report(names)
    report.extra["labels"] = "predicted" if predicted_labels else "ground truth"
    return dataclasses.replace(report, failed=tuple(failed))


def write_report(path: Path, report: EvalReport) -> None:
    from ..batch.io import write_atomic

    write_atomic(path, (json.dumps(report.to_json(), indent=2) + "\n").encode())
