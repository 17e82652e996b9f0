"""A deterministic synthetic segmentation set in the Pascal VOC layout (shapes on backgrounds).

Nothing is downloaded: the demo model is trained and CAM seeds are scored on this data. Each
image has 1-3 objects of 6 shape classes, each 5-30% of the image, on a smooth two-colour
gradient with low noise and 0-3 faint distractors; objects are solid, of a random hue that
contrasts with what lies under them, and a minority carry mild stripes or noise. Masks are VOC
palette PNGs: 0 background, 1..6 the classes, 255 a 1-pixel ignored band on object borders.

    python -m cam_rt.export.synthetic OUT --count 300 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["SHAPES", "Sample", "generate", "make_sample", "write_voc"]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "ellipse")
VOID = 255


@dataclass(frozen=True)
class Sample:
    """One image: RGB uint8 (H, W, 3), mask uint8 (H, W) and the class ids present (0-based)."""

    image: np.ndarray
    mask: np.ndarray
    labels: tuple[int, ...]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = a[None, None] + (b - a)[None, None] * t[..., None]
    img += rng.normal(0, 4, img.shape)
    for _ in range(int(rng.integers(0, 4))):  # faint distractors: soft lines and blobs
        colour = img.mean(axis=(0, 1)) + rng.normal(0, 18, 3)
        layer = img.copy()
        if rng.random() < 0.5:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(layer, p1, p2, colour.tolist(), int(rng.integers(1, 3)), cv2.LINE_AA)
        else:
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(layer, c, int(rng.integers(3, max(4, min(h, w) // 10))), colour.tolist(), -1)
        img = 0.6 * img + 0.4 * layer
    return img


def _shape_mask(rng: np.random.Generator, shape: str, h: int, w: int, area: float) -> np.ndarray:
    """A binary mask of ``shape`` with about ``area`` pixels, placed inside the image."""
    mask = np.zeros((h, w), np.uint8)
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        r = math.sqrt(area / math.pi)
        pts = None
    elif shape == "ring":
        r = math.sqrt(area / (math.pi * (1 - 0.55**2)))
        pts = None
    elif shape == "ellipse":
        ratio = rng.uniform(1.6, 2.4)
        b_ax = math.sqrt(area / (math.pi * ratio))
        r = b_ax * ratio
        pts = None
    else:
        if shape == "square":
            k, radii = 4, [1.0] * 4
        elif shape == "triangle":
            k, radii = 3, [1.0] * 3
        else:  # star
            k, radii = 10, [1.0, 0.45] * 5
        unit = np.array(
            [
                [
                    radii[i] * math.cos(angle + 2 * math.pi * i / k),
                    radii[i] * math.sin(angle + 2 * math.pi * i / k),
                ]
                for i in range(k)
            ]
        )
        unit_area = 0.5 * abs(
            np.dot(unit[:, 0], np.roll(unit[:, 1], 1)) - np.dot(unit[:, 1], np.roll(unit[:, 0], 1))
        )
        r = math.sqrt(area / unit_area)
        pts = unit * r
    r = min(r, 0.48 * min(h, w))
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    centre = (round(cx), round(cy))
    if shape == "circle":
        cv2.circle(mask, centre, round(r), 1, -1, cv2.LINE_8)
    elif shape == "ring":
        cv2.circle(mask, centre, round(r), 1, -1, cv2.LINE_8)
        cv2.circle(mask, centre, round(0.55 * r), 0, -1, cv2.LINE_8)
    elif shape == "ellipse":
        axes = (round(r), round(r / ratio))
        cv2.ellipse(mask, centre, axes, math.degrees(angle), 0, 360, 1, -1, cv2.LINE_8)
    else:
        assert pts is not None
        poly = np.round(pts * min(1.0, 0.48 * min(h, w) / max(r, 1e-6)) + [cx, cy])
        cv2.fillPoly(mask, [poly.astype(np.int32)], 1, cv2.LINE_8)
    return mask.astype(bool)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    best, best_d = None, -1.0
    for _ in range(12):
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(120, 256), rng.integers(90, 256)]]])
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        d = float(np.linalg.norm(colour - under))
        if d > 110:
            return colour
        if d > best_d:
            best, best_d = colour, d
    assert best is not None
    return best


def make_sample(rng: np.random.Generator, size: tuple[int, int] | None = None) -> Sample:
    """One image and its mask; ``size`` (H, W) fixed, or each side drawn in 96..192."""
    h, w = size if size is not None else (int(v) for v in rng.integers(96, 193, 2))
    img = _background(rng, h, w)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(0, len(SHAPES)))
        region = _shape_mask(rng, SHAPES[cls], h, w, rng.uniform(0.05, 0.30) * h * w)
        if not region.any():
            continue
        colour = _contrasting_colour(rng, img[region].mean(axis=0))
        fill = np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
        style = rng.random()
        if style < 0.15:  # mild stripes
            period = rng.uniform(4, 9)
            yy, xx = np.mgrid[0:h, 0:w]
            stripe = (np.sin((xx + yy) * 2 * math.pi / period) > 0)[..., None]
            fill = fill * np.where(stripe, 0.85, 1.0)
        elif style < 0.3:  # mild noise
            fill = fill + rng.normal(0, 10, fill.shape)
        img[region] = fill[region]
        mask[region] = cls + 1
    edges = cv2.dilate(mask, np.ones((3, 3), np.uint8)) != cv2.erode(
        mask, np.ones((3, 3), np.uint8)
    )
    labels = tuple(
        sorted(
            int(c) - 1
            for c in np.unique(mask)
            if 0 < c < VOID and np.count_nonzero(mask == c) >= 20
        )
    )
    mask = mask.copy()
    mask[edges] = VOID
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Sample(image, mask, labels)


def generate(count: int, seed: int, size: tuple[int, int] | None = None) -> list[Sample]:
    """``count`` samples from ``seed`` (the same seed always gives the same samples)."""
    rng = np.random.default_rng(seed)
    samples = []
    while len(samples) < count:
        sample = make_sample(rng, size)
        if sample.labels:
            samples.append(sample)
    return samples


def write_voc(
    root: Path, samples: list[Sample], split: str = "val", prefix: str = "syn"
) -> list[str]:
    """Write ``JPEGImages/`` (PNG, lossless), ``SegmentationClass/`` (palette PNG),
    ``ImageSets/Segmentation/<split>.txt`` and ``labels.json``; returns the image ids."""
    from PIL import Image

    from cam_rt.runtime.batch.io import encode_palette_png, write_atomic

    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    ids = []
    labels = {}
    for index, sample in enumerate(samples):
        name = f"{prefix}_{split}_{index:05d}"
        ids.append(name)
        Image.fromarray(sample.image).save(root / "JPEGImages" / f"{name}.png")
        write_atomic(root / "SegmentationClass" / f"{name}.png", encode_palette_png(sample.mask))
        labels[name] = [SHAPES[c] for c in sample.labels]
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    write_atomic(sets / f"{split}.txt", ("\n".join(ids) + "\n").encode())
    write_atomic(root / "labels.json", json.dumps(labels, indent=0).encode())
    write_atomic(root / "classes.txt", ("\n".join(SHAPES) + "\n").encode())
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the synthetic set in the VOC layout")
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)
    write_voc(args.root, generate(args.count, args.seed), args.split)
    print(f"wrote {args.count} images to {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
