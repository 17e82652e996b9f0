"""Text on pictures: the overlay's legend, labelled heatmap panels, labelled boxes.

Drawn with Pillow's ``ImageDraw`` and its default font (nothing is downloaded), at a size
relative to the picture: about 1/20 of its shorter side, at least 10 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError

__all__ = ["boxes_picture", "font_size", "label_strip", "legend", "legend_box"]

_SMALLEST = 48  # pictures with a shorter side get no legend
Entry = tuple[str, float, np.ndarray]  # class name, probability, RGB colour


def font_size(height: int, width: int) -> int:
    """Text height for a ``height`` x ``width`` picture."""
    return max(10, min(height, width) // 20)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _line(name: str, probability: float) -> str:
    return f"{name[:40]} {probability:.2f}"


@dataclass(frozen=True, slots=True)
class _Layout:
    size: int  # text height
    pad: int
    step: int  # one line
    shown: list[Entry]  # the entries with a line of their own
    texts: list[str]  # their lines, and "+N more"
    width: int  # the box spans x 0..width and y 0..height, inclusive
    height: int


def _layout(h: int, w: int, entries: Sequence[Entry]) -> _Layout | None:
    if not entries or min(h, w) < _SMALLEST:  # a legend would hide all of a tiny picture
        return None
    size = font_size(h, w)
    pad, step = max(2, size // 4), size + max(2, size // 4)
    fits = max(1, (h - 2 * pad) // step)
    shown = list(entries[:fits]) if len(entries) <= fits else list(entries[: fits - 1])
    texts = [_line(n, p) for n, p, _ in shown]
    if len(shown) < len(entries):
        texts.append(f"+{len(entries) - len(shown)} more")
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = _font(size)
    text_w = max(measure.textlength(t, font=font) for t in texts)
    box_w = min(w, int(pad * 3 + size + text_w))
    return _Layout(size, pad, step, shown, texts, box_w, pad * 2 + step * len(texts))


def legend_box(height: int, width: int, entries: Sequence[Entry]) -> tuple[int, int]:
    """(width, height) of the corner :func:`legend` covers on a ``height`` x ``width``
    picture: pixels ``[0, height) x [0, width)`` from the top left; (0, 0) if it draws none."""
    layout = _layout(height, width, entries)
    if layout is None:
        return 0, 0
    return min(width, layout.width + 1), min(height, layout.height + 1)


def legend(picture: np.ndarray, entries: Sequence[Entry]) -> np.ndarray:
    """``picture`` (RGB uint8) with a legend in its top-left corner: a colour swatch, the class
    name and probability per entry, one line each, on a dark box; lines that do not fit are
    summed up as "+N more". Pictures under 48 pixels on a side get none."""
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise InputError(f"picture has shape {picture.shape}; expected RGB (H, W, 3)")
    layout = _layout(picture.shape[0], picture.shape[1], entries)
    if layout is None:
        return picture.copy()
    size, pad, step = layout.size, layout.pad, layout.step
    im = Image.fromarray(np.ascontiguousarray(picture))
    draw = ImageDraw.Draw(im, "RGBA")
    font = _font(size)
    draw.rectangle((0, 0, layout.width, layout.height), fill=(0, 0, 0, 160))
    for i, text in enumerate(layout.texts):
        top = pad + i * step
        if i < len(layout.shown):
            colour = tuple(int(v) for v in layout.shown[i][2])
            draw.rectangle((pad, top, pad + size, top + size), fill=colour, outline=(255,) * 3)
        draw.text((pad * 2 + size, top), text, fill=(255, 255, 255), font=font)
    return np.asarray(im.convert("RGB"))


def label_strip(panel: np.ndarray, text: str, colour: np.ndarray | None = None) -> np.ndarray:
    """``panel`` (RGB uint8) under a white strip holding ``text`` (and a colour swatch)."""
    h, w = panel.shape[:2]
    size = font_size(max(h, 200), w)
    pad = max(2, size // 4)
    strip = Image.new("RGB", (w, size + 2 * pad), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    left = pad
    if colour is not None:
        draw.rectangle((pad, pad, pad + size, pad + size), fill=tuple(int(v) for v in colour))
        left = 2 * pad + size
    draw.text((left, pad), text, fill=(0, 0, 0), font=_font(size))
    return np.concatenate([np.asarray(strip), panel], axis=0)


def boxes_picture(
    image: np.ndarray,
    boxes: Sequence[tuple[Sequence[int], str, np.ndarray]],
) -> np.ndarray:
    """``image`` with each (box [x0, y0, x1, y1] exclusive, label, colour) drawn: the box's
    outline in its colour and the label on a tag of that colour above it (inside if there is
    no room above)."""
    im = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(im)
    h, w = image.shape[:2]
    size = font_size(h, w)
    font = _font(size)
    line = max(1, min(h, w) // 100)
    for box, label, colour in boxes:
        x0, y0, x1, y1 = (int(v) for v in box)
        fill = tuple(int(v) for v in colour)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=fill, width=line)
        tag_w = draw.textlength(label, font=font) + 4
        top = y0 - size - 2 if y0 >= size + 2 else y0
        draw.rectangle((x0, top, x0 + tag_w, top + size + 1), fill=fill)
        dark = sum(fill) > 380
        draw.text((x0 + 2, top), label, fill=(0, 0, 0) if dark else (255, 255, 255), font=font)
    return np.asarray(im)
