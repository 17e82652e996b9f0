"""Localization and segmentation cues from normalised CAMs: seeds and boxes. Pure arrays.

Seeds: a constant background score t is stacked before the class maps and the argmax over
that stack labels each pixel (0 background, class id + 1 otherwise); boxes are the bounding
rectangles of the 8-connected regions where a map is at least a fraction of its maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["Box", "boxes", "seeds"]


def seeds(maps: np.ndarray, class_ids: Sequence[int], bg_threshold: float) -> np.ndarray:
    """Segmentation seeds (H, W): 0 = background, class id k -> label k + 1.

    A (1 + C)-channel stack with the constant ``bg_threshold`` in channel 0 and the normalised
    maps of the classes in the others; label = argmax, the background winning ties. uint8 for up
    to 254 classes, uint16 above.
    """
    if maps.ndim != 3 or maps.shape[-1] != len(class_ids):
        raise InputError(
            f"maps have shape {maps.shape} for {len(class_ids)} classes; expected (H, W, C)"
        )
    if not 0.0 <= bg_threshold <= 1.0:
        raise ConfigError(f"bg_threshold {bg_threshold} is outside [0, 1]")
    h, w, _ = maps.shape
    stack = np.concatenate([np.full((h, w, 1), bg_threshold, np.float32), maps], axis=2)
    winner = np.argmax(stack, axis=2)
    ids = np.asarray(class_ids, dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise InputError(f"class ids must be >= 0; got {ids.min()}")
    labels = np.concatenate([[0], ids + 1])
    dtype = np.uint8 if labels.max() < 255 else np.uint16  # 255 is VOC's void label
    out: np.ndarray = labels[winner].astype(dtype)
    return out


@dataclass(frozen=True, slots=True)
class Box:
    """A box around one connected region of a class map; x1, y1 are exclusive (x0 + width)."""

    class_id: int
    x0: int
    y0: int
    x1: int
    y1: int
    area: int  # pixels in the region
    peak: float  # highest map value in the region

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def boxes(
    single_map: np.ndarray,
    class_id: int,
    threshold: float = 0.2,
    mode: Literal["largest", "all"] = "largest",
) -> list[Box]:
    """Boxes of the regions where ``map >= threshold * max(map)`` (8-connected).

    ``largest``: the box of the largest region (WSOL's usual box); ``all``: every region,
    largest first. An all-zero map gives no box.
    """
    if single_map.ndim != 2:
        raise InputError(f"boxes take one (H, W) map; got shape {single_map.shape}")
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"box threshold {threshold} must be in (0, 1] (a fraction of the max)")
    if mode not in ("largest", "all"):
        raise ConfigError(f"box mode '{mode}' is unknown: use largest or all")
    peak = float(single_map.max()) if single_map.size else 0.0
    if peak <= 0:
        return []
    mask = (single_map >= threshold * peak).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = []
    for region in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[region])
        region_peak = float(single_map[labels == region].max())
        found.append(Box(class_id, x, y, x + w, y + h, area, region_peak))
    found.sort(key=lambda b: (-b.area, b.y0, b.x0))
    return found[:1] if mode == "largest" else found
