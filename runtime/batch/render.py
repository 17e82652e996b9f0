"""The render and write steps of a run: one image's maps -> boxes, overlay, and the encoded
output files (``--save`` kinds), written atomically under the output folder.

Kinds and their files (``NAME`` is the input's output name):

- ``overlay`` ``NAME.overlay.png``: each pixel takes its strongest class's colour with an alpha
  that rises smoothly with the map, from 0 at 0 to ``overlay_alpha`` at half the peak
  (:func:`~cam_rt.runtime.maps.colour.overlay_alpha`; the photo is untouched where the maps
  are low), and a legend (colour, class name, probability per explained class) in the
  top-left corner;
- ``colors`` ``NAME.colors.png``: keras-explainable's additive picture, the classes' colours
  times their maps, summed, clipped, blended half over the image;
- ``heatmap`` ``NAME.heatmap.png``: one row, a colormap panel per explained class, each under
  its class name and probability;
- ``maps`` ``NAME.maps.npz``: ``maps`` (H, W, C) float16, ``class_ids``, ``class_names``, and
  the full ``scores`` and ``probabilities`` (L,) of the model's classes;
- ``seeds`` ``NAME.seeds.png``: label = class id + 1 (0: background). For a model of <= 254
  classes a palette PNG (VOC colours); above, a 16-bit grayscale PNG of the labels plus
  ``NAME.seeds.preview.png``, the labels in the overlay's colours. The format follows the
  model's class count (L, the length of ``scores``), so every image of a run gets the same;
- ``boxes`` ``NAME.boxes.json`` (every region's box per class, largest first) and
  ``NAME.boxes.png`` (the boxes drawn in the class colours, labelled with name and peak).

One kind that fails for one image (its file cannot be written, say) leaves the image's other
files written; :attr:`Rendered.output_errors` names it (the record's ``output_errors``). A
kind that cannot work with the model at all is refused before the run (:func:`check_kinds`).
A full disk ends the run: :func:`~cam_rt.runtime.batch.folder.write_error`.
"""

from __future__ import annotations

import errno
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import CamRtError, ConfigError, InputError
from ..explain import CamResult
from ..maps.colour import (
    COLORMAPS,
    OVERLAY_OPACITY,
    alpha_overlay,
    blend,
    class_overlay,
    heatmap_overlay,
    overlay_colours,
)
from ..maps.cues import boxes, seeds
from ..maps.legend import boxes_picture, label_strip, legend
from .folder import OutputFolderError, write_error
from .io import encode_json, encode_npz, encode_palette_png, encode_png, write_atomic

__all__ = [
    "OUTPUT_KINDS",
    "PALETTE_CLASSES",
    "RenderConfig",
    "Rendered",
    "check_kinds",
    "output_path",
    "render",
    "write_outputs",
]

OUTPUT_KINDS = {
    "overlay": ".overlay.png",
    "colors": ".colors.png",
    "heatmap": ".heatmap.png",
    "maps": ".maps.npz",
    "seeds": ".seeds.png",
    "boxes": ".boxes.json",
}
#: Files a kind writes beside its own (``seeds.preview`` only for more than 254 classes).
EXTRA_FILES = {"boxes": ("boxes.png",), "seeds": ("seeds.preview",)}
_SUFFIX = {"boxes.png": ".boxes.png", "seeds.preview": ".seeds.preview.png"}
PALETTE_CLASSES = 254  # a palette PNG holds labels 0..254 (255 is VOC's void)
_MAX_LABEL_CLASSES = 65534  # a 16-bit PNG holds labels 0..65535
_ROW_WIDTH = 8192  # the heatmap row's panels shrink to keep it this wide at most


class _NameRefused(InputError):
    """The file system refuses the image's output name (too long): the whole image fails."""


def check_kinds(save: Sequence[str], num_classes: int) -> None:
    """ConfigError, before any work, for a ``--save`` kind that cannot work with a model of
    ``num_classes`` classes (it would fail every image)."""
    if "seeds" in save and num_classes > _MAX_LABEL_CLASSES:
        raise ConfigError(
            f"--save seeds cannot label {num_classes} classes (a 16-bit PNG holds "
            f"{_MAX_LABEL_CLASSES}): leave seeds out of --save, or save maps instead"
        )


@dataclass(frozen=True, slots=True)
class RenderConfig:
    """What to write per image (``--save``) and how it looks (``--bg-threshold``, ...); the
    defaults here are the run's (:class:`~cam_rt.runtime.batch.runner.RunConfig` takes them)."""

    save: tuple[str, ...] = ("overlay", "maps")
    bg_threshold: float = 0.3
    box_threshold: float = 0.2
    colormap: str = "jet"
    overlay_alpha: float = OVERLAY_OPACITY

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


class Rendered:
    """One image's outputs: its regions per class, its overlay (also the grid's thumbnail;
    None if it could not be drawn), and :meth:`encoded` file bytes per kind (computed when
    asked, so one kind at a time is held in memory). :attr:`output_errors`: the kinds that
    failed in :func:`write_outputs`, with their one-line message."""

    def __init__(
        self,
        name: str,
        regions: tuple[dict[str, Any], ...],
        overlay: np.ndarray | None,
        encoders: dict[str, Callable[[], bytes | None]],
        caption: str = "",
    ) -> None:
        self.name = name
        self.regions = regions  # per explained class: class_id, class_name, largest, all
        self.overlay = overlay
        self.caption = caption  # class names and probabilities (the grid's)
        self.output_errors: dict[str, str] = {}
        self._encoders = encoders

    @property
    def largest_boxes(self) -> list[tuple[int, list[int] | None]]:
        """(class id, largest box [x0, y0, x1, y1] or None) per explained class."""
        return [(r["class_id"], r["largest"]) for r in self.regions]

    def encoded(self, kind: str) -> bytes:
        """The bytes of ``kind``'s file (or of an extra file: ``boxes.png``,
        ``seeds.preview``); InputError-free kinds only: b"" for an extra file not written."""
        return self._encoders[kind]() or b""


def _heatmap_row(image: np.ndarray, result: CamResult, colormap: str) -> np.ndarray:
    maps, probs = result.maps, result.probabilities
    h, w = image.shape[:2]
    count = max(1, len(result.class_ids))
    scale = min(1.0, _ROW_WIDTH / (count * w))
    panels = []
    for c, (cid, name) in enumerate(zip(result.class_ids, result.class_names, strict=True)):
        panel = heatmap_overlay(image, maps[..., c], colormap)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            panel = cv2.resize(panel, size, interpolation=cv2.INTER_AREA)
        panels.append(label_strip(panel, f"{name} {float(probs[cid]):.2f}"))
    if not panels:
        panels.append(label_strip(heatmap_overlay(image, np.zeros((h, w), np.float32)), "-"))
    return np.concatenate(panels, axis=1)


def _seed_files(result: CamResult, bg_threshold: float) -> tuple[bytes, bytes | None]:
    """The seeds file, and the preview for a model of more than 254 classes."""
    labels = seeds(result.maps, result.class_ids, bg_threshold)
    if len(result.scores) <= PALETTE_CLASSES:
        return encode_palette_png(labels.astype(np.uint8)), None
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(labels.astype(np.uint16)).save(buf, "PNG")  # 16-bit grayscale
    lut = np.zeros((len(result.scores) + 1, 3), np.uint8)  # label 0: black
    lut[np.asarray(result.class_ids, np.int64) + 1] = overlay_colours(result.class_ids)
    return buf.getvalue(), encode_png(lut[labels])


def render(name: str, result: CamResult, image: np.ndarray, config: RenderConfig) -> Rendered:
    """Boxes and overlay of ``result`` over ``image`` (RGB uint8, the maps' size)."""
    ids, names = list(result.class_ids), list(result.class_names)
    probs = result.probabilities
    regions: list[dict[str, Any]] = []
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
    colours = overlay_colours(ids)
    entries = [
        (n, float(probs[cid]), colours[c])
        for c, (cid, n) in enumerate(zip(ids, names, strict=True))
    ]
    overlay: np.ndarray | None
    try:
        overlay = legend(alpha_overlay(image, result.maps, ids, config.overlay_alpha), entries)
    except (CamRtError, ValueError, OSError):  # the overlay kind fails, the others go on
        overlay = None
    seed_files: list[tuple[bytes, bytes | None]] = []

    def seed(part: int) -> bytes | None:
        if not seed_files:
            seed_files.append(_seed_files(result, config.bg_threshold))
        return seed_files[0][part]

    def drawn_overlay() -> bytes:
        if overlay is None:
            return encode_png(alpha_overlay(image, result.maps, ids, config.overlay_alpha))
        return encode_png(overlay)

    tags: list[tuple[Sequence[int], str, np.ndarray]] = []
    for c, r in enumerate(regions):
        drawn: list[dict[str, Any]] = r["all"]
        tags += [(b["box"], f"{r['class_name']} {b['peak']:.2f}", colours[c]) for b in drawn]
    encoders: dict[str, Callable[[], bytes | None]] = {
        "overlay": drawn_overlay,
        "colors": lambda: encode_png(blend(image, class_overlay(result.maps, ids), 0.5)),
        "heatmap": lambda: encode_png(_heatmap_row(image, result, config.colormap)),
        "maps": lambda: encode_npz(
            maps=result.maps.astype(np.float16),
            class_ids=np.asarray(ids, np.int32),
            class_names=np.asarray(names, dtype=str),
            scores=result.scores,
            probabilities=result.probabilities,
        ),
        "seeds": lambda: seed(0),
        "seeds.preview": lambda: seed(1),
        "boxes": lambda: encode_json(
            {
                "image": name,
                "size": list(result.size),
                "threshold": config.box_threshold,
                "boxes": regions,
            }
        ),
        "boxes.png": lambda: encode_png(boxes_picture(image, tags)),
    }
    caption = ", ".join(f"{n} {float(probs[cid]):.2f}" for cid, n in zip(ids, names, strict=True))
    return Rendered(name, tuple(regions), overlay, encoders, caption or "(no class)")


def output_path(outdir: Path, name: str, kind: str) -> Path:
    """Where the ``kind`` file (or extra file: ``boxes.png``, ``seeds.preview``) of the image
    named ``name`` goes."""
    return outdir / (name + (OUTPUT_KINDS.get(kind) or _SUFFIX[kind]))


def write_outputs(outdir: Path, rendered: Rendered, kinds: Sequence[str]) -> list[str]:
    """Write the ``kinds`` files of ``rendered`` atomically; their paths relative to
    ``outdir`` ('/'-separated), in ``kinds`` order. A kind that fails is left out and its
    message kept in ``rendered.output_errors``; if every kind fails, the first error is
    raised (the image fails), and a full disk's :class:`OutputFolderError` at once."""
    written: list[str] = []
    first: Exception | None = None
    for kind in kinds:
        try:
            for part in (kind, *EXTRA_FILES.get(kind, ())):
                data = rendered._encoders[part]()
                if data is None:
                    continue
                path = output_path(outdir, rendered.name, part)
                try:
                    write_atomic(path, data)
                except ConfigError as exc:  # the path refused before writing
                    cause = exc.__cause__
                    if isinstance(cause, OSError) and cause.errno == errno.ENAMETOOLONG:
                        raise _NameRefused(
                            f"cannot write {path.name} (File name too long): rename or move "
                            "this input"
                        ) from exc
                    raise
                except OSError as exc:
                    error = write_error(outdir, path, exc)
                    if isinstance(error, InputError):  # the input's name: rename it
                        raise _NameRefused(str(error)) from exc
                    raise error from exc
                written.append(path.relative_to(outdir).as_posix())
        except (OutputFolderError, _NameRefused):  # the run's, or the whole image's
            raise
        except Exception as exc:  # this kind of this image: recorded, the others go on
            first = first or exc
            message = " ".join(str(exc).splitlines()) or type(exc).__name__
            rendered.output_errors[kind] = message
    if first is not None and len(rendered.output_errors) == len(kinds):
        raise first
    return written
