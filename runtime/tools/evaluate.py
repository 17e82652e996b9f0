"""CAM seed quality against ground-truth masks, as OC-CSE's ``evaluation.py`` scores it.

Seeds: per pixel, a constant background score t competes with the normalised maps (in [0, 1])
of the image's classes; the label is the argmax, background winning ties. Pixels
labelled 255 are ignored. ``IoU_c = TP / (T + P - TP + 1e-10)`` over the whole set, and mIoU is
the mean over all classes including background, as OC-CSE computes it (a class absent from both
the masks and the predictions counts as 0; the report names such classes). The background
threshold t is swept (0.10, 0.11, ..., 0.39 by default) and the best t is reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..batch.io import IMAGE_SUFFIXES, read_image
from ..errors import ConfigError, InputError
from ..explain import Explainer

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EvalItem",
    "EvalReport",
    "SeedScorer",
    "iou_from_confusion",
    "read_mask",
    "voc_items",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.10 + 0.01 * i, 2) for i in range(30))
IGNORE = 255


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
        if any(not 0.0 <= t <= 1.0 for t in thresholds):
            raise ConfigError(f"thresholds must lie in [0, 1]; got {list(thresholds)}")
        self.n = num_labels
        self.thresholds = tuple(float(t) for t in thresholds)
        self.confusion = np.zeros((len(self.thresholds), self.n, self.n), np.int64)
        self.images = 0

    def add(self, maps: np.ndarray, class_ids: Sequence[int], mask: np.ndarray) -> None:
        """One image: maps (H, W, C) in [0, 1] of ``class_ids``; mask (H, W) labels 0..n-1, 255."""
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
        for i, t in enumerate(self.thresholds):
            pred = np.where(best > t, winner, 0)  # the background wins ties
            self.confusion[i] += np.bincount(gt * self.n + pred, minlength=self.n * self.n).reshape(
                self.n, self.n
            )
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

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "best_threshold": self.best_threshold,
            "miou": round(self.miou, 6),
            "per_class_iou": {k: round(v, 6) for k, v in self.per_class.items()},
            "miou_by_threshold": {f"{t:.2f}": round(m, 6) for t, m in self.by_threshold.items()},
            "classes_absent": list(self.absent),
            **self.extra,
        }

    def table(self) -> str:
        lines = [f"{'class':<16} IoU (t = {self.best_threshold:.2f})"]
        lines += [f"{name:<16} {100 * v:6.2f}" for name, v in self.per_class.items()]
        lines.append(f"{'mIoU':<16} {100 * self.miou:6.2f}  ({self.images} images)")
        if self.absent:
            lines.append(f"absent from masks and predictions (IoU 0): {', '.join(self.absent)}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class EvalItem:
    name: str
    image: Path
    mask: Path


def read_mask(path: Path) -> np.ndarray:
    """A label mask: a palette/grayscale PNG read as its indices (H, W) uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise InputError(
                    f"mask {path} is a {im.mode} image; expected a palette or grayscale PNG of "
                    "class indices (VOC SegmentationClass)"
                )
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"cannot read mask {path}: {exc}") from exc


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


def evaluate(
    explainer: Explainer,
    items: Sequence[EvalItem],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    predicted_labels: bool = False,
    labels: Mapping[str, Sequence[int | str]] | None = None,
    events: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> EvalReport:
    """Score the CAM seeds of ``items``. Classes come from the ground-truth masks (OC-CSE),
    from ``labels`` when given, or from the model's predictions with ``predicted_labels``."""
    names = explainer.session.class_names
    scorer = SeedScorer(len(names) + 1, thresholds)
    say = events or (lambda _k, _d: None)
    say("start", {"total": len(items), "skipped": 0})
    batch = max(1, explainer.config.batch_size // 2)
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        pictures = [read_image(item.image).pixels for item in chunk]
        masks = [read_mask(item.mask) for item in chunk]
        for item, picture, mask in zip(chunk, pictures, masks, strict=True):
            if picture.shape[:2] != mask.shape:
                raise InputError(
                    f"image {item.image} is {picture.shape[:2]} but its mask is {mask.shape}"
                )
        if predicted_labels:
            per_image = None
        elif labels is not None:
            per_image = [list(labels[item.name]) for item in chunk]
        else:
            per_image = [[int(c) - 1 for c in np.unique(m) if 0 < c < IGNORE] for m in masks]
        results = explainer.explain(pictures, labels=per_image)
        for item, result, mask in zip(chunk, results, masks, strict=True):
            scorer.add(result.maps, result.class_ids, mask)
            say("done", {"record": {"name": item.name}})
    report = scorer.report(names)
    report.extra["labels"] = "predicted" if predicted_labels else "ground truth"
    return report


def write_report(path: Path, report: EvalReport) -> None:
    from ..batch.io import write_atomic

    write_atomic(path, (json.dumps(report.to_json(), indent=2) + "\n").encode())
