"""The render and write steps of a run: one image's maps -> boxes, overlay, and the encoded
output files (``--save`` kinds), written atomically under the output folder.

Kinds and their files (``NAME`` is the input's output name):

- ``overlay`` ``NAME.overlay.png``: the classes' colours blended over the image;
- ``heatmap`` ``NAME.heatmap.png``: the per-pixel maximum over the classes, as a colormap;
- ``maps`` ``NAME.maps.npz``: ``maps`` (H, W, C) float16, ``class_ids``, ``class_names``,
  ``scores``, ``probabilities``;
- ``seeds`` ``NAME.seeds.png``: a palette PNG of class ids + 1 (0: background), VOC colours;
- ``boxes`` ``NAME.boxes.json``: every region's box per class, largest first.

A file that cannot be written fails its image when the cause is that image's name (too long,
a folder in the way), and ends the run when it is the folder's (a full disk):
:func:`~cam_rt.runtime.batch.folder.write_error`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..explain import CamResult
from ..maps.colour import COLORMAPS, blend, class_overlay, heatmap_overlay
from ..maps.cues import boxes, seeds
from .folder import write_error
from .io import encode_json, encode_npz, encode_palette_png, encode_png, write_atomic

__all__ = [
    "OUTPUT_KINDS",
    "RenderConfig",
    "Rendered",
    "output_path",
    "render",
    "write_outputs",
]

OUTPUT_KINDS = {
    "overlay": ".overlay.png",
    "heatmap": ".heatmap.png",
    "maps": ".maps.npz",
    "seeds": ".seeds.png",
    "boxes": ".boxes.json",
}


@dataclass(frozen=True, slots=True)
class RenderConfig:
    """What to write per image (``--save``) and how it looks (``--bg-threshold``, ...)."""

    save: tuple[str, ...] = ("overlay", "maps")
    bg_threshold: float = 0.3
    box_threshold: float = 0.2
    colormap: str = "jet"
    overlay_alpha: float = 0.5

    def __post_init__(self) -> None:
        if not self.save:
            raise ConfigError(f"--save is empty: name at least one of {','.join(OUTPUT_KINDS)}")
        unknown = [s for s in self.save if s not in OUTPUT_KINDS]
        if unknown:
            raise ConfigError(
                f"--save {','.join(unknown)} is unknown: use any of {','.join(OUTPUT_KINDS)}"
            )
        if not 0.0 <= self.bg_threshold <= 1.0:
            raise ConfigError(f"--bg-threshold {self.bg_threshold} is outside [0, 1]")
        if not 0.0 < self.box_threshold <= 1.0:
            raise ConfigError(f"box threshold {self.box_threshold} must be in (0, 1]")
        if self.colormap not in COLORMAPS:
            raise ConfigError(
                f"colormap '{self.colormap}' is unknown: use one of {', '.join(COLORMAPS)}"
            )
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ConfigError(f"overlay_alpha {self.overlay_alpha} is outside [0, 1]")


@dataclass(frozen=True)
class Rendered:
    """One image's outputs: its regions per class, its overlay (also the grid's thumbnail),
    and :meth:`encoded` file bytes per kind (computed when asked, so one kind at a time is
    held in memory)."""

    name: str
    regions: tuple[dict[str, Any], ...]  # per explained class: class_id, class_name, largest, all
    overlay: np.ndarray
    _encoders: dict[str, Callable[[], bytes]]

    @property
    def largest_boxes(self) -> list[tuple[int, list[int] | None]]:
        """(class id, largest box [x0, y0, x1, y1] or None) per explained class."""
        return [(r["class_id"], r["largest"]) for r in self.regions]

    def encoded(self, kind: str) -> bytes:
        return self._encoders[kind]()


def render(name: str, result: CamResult, image: np.ndarray, config: RenderConfig) -> Rendered:
    """Boxes and overlay of ``result`` over ``image`` (RGB uint8, the maps' size)."""
    ids, names = list(result.class_ids), list(result.class_names)
    regions = []
    for c, cid in enumerate(ids):
        found = boxes(result.maps[..., c], cid, config.box_threshold, mode="all")
        regions.append(
            {
                "class_id": cid,
                "class_name": names[c],
                "largest": found[0].as_list() if found else None,
                "all": [
                    {"box": b.as_list(), "area": b.area, "peak": round(b.peak, 4)} for b in found
                ],
            }
        )
    overlay = blend(image, class_overlay(result.maps, ids), config.overlay_alpha)
    strongest = result.maps.max(axis=2) if ids else np.zeros(image.shape[:2], np.float32)
    encoders: dict[str, Callable[[], bytes]] = {
        "overlay": lambda: encode_png(overlay),
        "heatmap": lambda: encode_png(heatmap_overlay(image, strongest, config.colormap)),
        "maps": lambda: encode_npz(
            maps=result.maps.astype(np.float16),
            class_ids=np.asarray(ids, np.int32),
            class_names=np.asarray(names, dtype=str),
            scores=result.scores,
            probabilities=result.probabilities,
        ),
        "seeds": lambda: encode_palette_png(seeds(result.maps, ids, config.bg_threshold)),
        "boxes": lambda: encode_json(
            {
                "image": name,
                "size": list(result.size),
                "threshold": config.box_threshold,
                "boxes": regions,
            }
        ),
    }
    return Rendered(name, tuple(regions), overlay, encoders)


def output_path(outdir: Path, name: str, kind: str) -> Path:
    """Where the ``kind`` file of the image named ``name`` goes."""
    return outdir / (name + OUTPUT_KINDS[kind])


def write_outputs(outdir: Path, rendered: Rendered, kinds: Sequence[str]) -> list[str]:
    """Write the ``kinds`` files of ``rendered`` atomically; their paths relative to
    ``outdir`` ('/'-separated), in ``kinds`` order. A file that cannot be written raises
    :func:`write_error`'s error."""
    written = []
    for kind in kinds:
        path = output_path(outdir, rendered.name, kind)
        data = rendered.encoded(kind)
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise write_error(outdir, path, exc) from exc
        written.append(path.relative_to(outdir).as_posix())
    return written
