"""``--grid``: one picture of the run's first 8 inputs, each beside its overlay, with the
class names and probabilities under each overlay.

A :class:`GridSheet` keeps a thumbnail pair of each of those inputs as it is written; inputs a
resumed run skipped are read back from their image and overlay file when the sheet is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError
from ..maps.colour import grid
from .folder import write_error
from .inputs import InputItem
from .io import encode_png, read_image, write_atomic
from .render import output_path

__all__ = ["GRID_SIZE", "GridSheet", "thumbnail"]

GRID_SIZE = 8  # inputs on the sheet


def thumbnail(picture: np.ndarray, side: int = 256) -> np.ndarray:
    """``picture`` shrunk (never enlarged) to fit ``side`` x ``side``, aspect kept."""
    scale = min(1.0, side / max(picture.shape[:2]))
    size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
    return np.asarray(cv2.resize(picture, size, interpolation=cv2.INTER_AREA))


def _caption(classes: Sequence[Mapping[str, Any]]) -> str:
    """Class names and probabilities of a record's ``classes``."""
    return ", ".join(f"{c['name']} {float(c.get('probability', 0.0)):.2f}" for c in classes) or (
        "(no class)"
    )


class GridSheet:
    """The grid picture at ``path`` of the first :data:`GRID_SIZE` of ``items``."""

    def __init__(self, path: Path, items: Sequence[InputItem], max_pixels: int) -> None:
        self.path = Path(path)
        self.items = list(items[:GRID_SIZE])
        self.max_pixels = max_pixels
        self._names = {item.name for item in self.items}
        self._thumbs: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}

    def check_writable(self) -> None:
        """ConfigError, before any work, if the sheet cannot be written."""
        try:
            if self.path.is_dir():
                raise OSError("it is a folder")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            probe = self.path.parent / f".cam-rt-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"--grid {self.path} cannot be written ({reason}): give a PNG file path"
            ) from exc

    def add(self, name: str, image: np.ndarray, overlay: np.ndarray | None, caption: str) -> None:
        """Keep the thumbnails of ``name`` if it is on the sheet (thread-safe); ``caption``:
        its classes and probabilities, shown under the overlay. No overlay: left out."""
        if name in self._names and overlay is not None:
            self._thumbs[name] = (thumbnail(image), thumbnail(overlay), caption)

    def write(self, outdir: Path, records: Mapping[str, Mapping[str, Any]]) -> None:
        """Write the sheet: the inputs with an overlay (``records`` give the titles of those
        read back from disk); nothing if none has one."""
        pictures, titles, captions = [], [], []
        for item in self.items:
            thumb = self._thumbs.get(item.name) or self._read_back(item, outdir, records)
            if thumb is not None:
                pictures += [thumb[0], thumb[1]]
                titles += [item.name, "overlay"]
                captions += ["", thumb[2]]
        if pictures:
            data = encode_png(grid(pictures, titles, columns=GRID_SIZE, captions=captions))
            try:
                write_atomic(self.path, data)
            except OSError as exc:  # a full disk: one line, like the outputs'
                raise write_error(self.path.parent, self.path, exc) from exc

    def _read_back(
        self, item: InputItem, outdir: Path, records: Mapping[str, Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, str] | None:
        overlay_file = output_path(outdir, item.name, "overlay")
        if not overlay_file.is_file():
            return None
        try:
            from PIL import Image

            with Image.open(overlay_file) as im:
                overlay = np.asarray(im.convert("RGB"))
            image = read_image(item.path, self.max_pixels).pixels
        except Exception:  # a damaged or vanished file: that picture is left out
            return None
        classes = records.get(item.name, {}).get("classes", [])
        return thumbnail(image), thumbnail(overlay), _caption(classes)
