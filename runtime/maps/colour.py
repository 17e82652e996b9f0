"""Colours and pictures: the Pascal VOC palette, class overlays, heatmaps, grids. Pure arrays.

Images are RGB uint8 (H, W, 3); maps are float32 (H, W, C) in [0, 1]. The class overlay is
keras-explainable's ``cams_to_colors``: each class's colour times its map, summed, clipped.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Sequence

import cv2
import numpy as np

from ..errors import ConfigError, InputError

__all__ = [
    "COLORMAPS",
    "FULL_AT",
    "OVERLAY_OPACITY",
    "alpha_overlay",
    "blend",
    "class_colours",
    "class_overlay",
    "grid",
    "heatmap",
    "heatmap_overlay",
    "overlay_alpha",
    "overlay_colours",
    "voc_palette",
]

COLORMAPS = {"jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO}


def voc_palette(n: int = 256) -> np.ndarray:
    """(n, 3) uint8: the Pascal VOC colour of label i from the bits of i (3 bits a round).

    0 = background (0, 0, 0), 1 = aeroplane (128, 0, 0), ..., 20 = tvmonitor (0, 64, 128),
    255 = void (224, 224, 192).
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for label in range(n):
        c, r, g, b = label, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[label] = (r, g, b)
    return palette


_PALETTE = voc_palette()


def class_colours(class_ids: Sequence[int]) -> np.ndarray:
    """(C, 3) uint8 colours of classifier classes: class id k has VOC label k + 1."""
    ids = np.asarray(class_ids, dtype=np.int64)
    return _PALETTE[(ids % 254) + 1]


@functools.cache
def _distinct_palette() -> np.ndarray:
    """The VOC colours of labels 1..21, then an 11-level RGB lattice (none within 24 of a VOC
    colour) in farthest-point order in CIELAB: each next colour is the one farthest from all
    before it. 1338 colours, any two at least 25 apart in RGB; deterministic."""
    voc = _PALETTE[1:22]
    levels = np.linspace(0, 255, 11).round().astype(np.uint8)
    lattice = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    far = np.linalg.norm(lattice[:, None].astype(np.float32) - voc[None], axis=2).min(1) >= 24
    lattice = lattice[far]

    def lab(rgb: np.ndarray) -> np.ndarray:
        flat = rgb.reshape(1, -1, 3).astype(np.float32) / 255.0
        return np.asarray(cv2.cvtColor(flat, cv2.COLOR_RGB2Lab)).reshape(-1, 3)

    points, chosen = lab(lattice), lab(voc)
    nearest = np.linalg.norm(points[:, None] - chosen[None], axis=2).min(1)
    order = []
    for _ in range(len(lattice)):
        i = int(np.argmax(nearest))
        order.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
        nearest[i] = -1.0
    return np.concatenate([voc, lattice[order]])


def overlay_colours(class_ids: Sequence[int]) -> np.ndarray:
    """(C, 3) uint8 colours of the overlay, legend, boxes and seed previews: class id k gets
    colour k of :func:`_distinct_palette` (ids 0..20: VOC labels 1..21; up to id 1337 any two
    are >= 25 apart in RGB); above, golden-angle hues at 3 lightnesses (not all distinct)."""
    palette = _distinct_palette()
    out = np.zeros((len(class_ids), 3), np.uint8)
    for row, cid in enumerate(class_ids):
        if cid < len(palette):
            out[row] = palette[cid]
        else:
            hue = (cid * 0.381966) % 1.0
            value = (1.0, 0.75, 0.55)[cid % 3]
            out[row] = [round(255 * v) for v in colorsys.hsv_to_rgb(hue, 0.9, value)]
    return out


#: The overlay's opacity where a class's map is strong (``--save overlay``'s default).
OVERLAY_OPACITY = 0.8
#: The map value from which the overlay has its full opacity: CAMs are normalised to a peak
#: of 1 and an object's pixels mostly lie well below it (the demo model's maps on photos: the
#: top 20% starts at 0.17-0.33), so an alpha linear in the map left the objects faint.
FULL_AT = 0.5


def overlay_alpha(maps: np.ndarray, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """The overlay's alpha of a map value ``m``: ``opacity * smoothstep(min(m / FULL_AT, 1))``
    (``smoothstep(t) = 3t^2 - 2t^3``): 0 at 0 and flat there (weak activations leave the
    photo as it is), ``opacity / 2`` at ``FULL_AT / 2``, ``opacity`` from ``FULL_AT`` on."""
    t = np.clip(np.asarray(maps, np.float32) / FULL_AT, 0.0, 1.0)
    alpha: np.ndarray = opacity * t * t * (3.0 - 2.0 * t)
    return alpha


def alpha_overlay(
    image: np.ndarray,
    maps: np.ndarray,
    class_ids: Sequence[int],
    opacity: float = OVERLAY_OPACITY,
) -> np.ndarray:
    """Each pixel takes its strongest class's colour with alpha :func:`overlay_alpha` of that
    class's map: the photo is untouched where every map is 0, the class colour (times
    ``opacity``) where one is ``FULL_AT`` or more.

    ``out = (1 - a) * image + a * colour[argmax_c map]``, ``a = overlay_alpha(max_c map)``;
    RGB uint8.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ConfigError(f"opacity {opacity} is outside [0, 1]")
    _check_rgb(image)
    _check_maps(maps, class_ids)
    if maps.shape[:2] != image.shape[:2]:
        raise InputError(f"maps {maps.shape} and image {image.shape} differ in size")
    if not class_ids:
        return image.copy()
    strongest = np.argmax(maps, axis=2)
    alpha = overlay_alpha(np.take_along_axis(maps, strongest[..., None], 2), opacity)
    colours = overlay_colours(class_ids).astype(np.float32)[strongest]
    out = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    picture: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return picture


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise InputError(f"picture has shape {image.shape}; expected RGB (H, W, 3)")


def _check_maps(maps: np.ndarray, class_ids: Sequence[int]) -> None:
    if maps.ndim != 3 or maps.shape[-1] != len(class_ids):
        raise InputError(
            f"maps have shape {maps.shape} for {len(class_ids)} classes; expected (H, W, C)"
        )


def class_overlay(maps: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """The seed's additive overlay: ``clip(sum_c colour[c] / 255 * map[..., c], 0, 1)``.

    Returns float32 (H, W, 3) in [0, 1].
    """
    _check_maps(maps, class_ids)
    colours = class_colours(class_ids).astype(np.float32) / 255.0
    mixed = np.tensordot(maps.astype(np.float32), colours, axes=([2], [0]))
    return np.clip(mixed, 0.0, 1.0).astype(np.float32)


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) * image + alpha * overlay`` as RGB uint8; overlay is float in [0, 1]."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha {alpha} is outside [0, 1]")
    _check_rgb(image)
    if overlay.shape != image.shape:
        raise InputError(f"image {image.shape} and overlay {overlay.shape} differ in shape")
    out = (1.0 - alpha) * image.astype(np.float32) + alpha * 255.0 * overlay
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def heatmap(single_map: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A (H, W) map in [0, 1] as an RGB uint8 colormap picture (jet or turbo)."""
    if colormap not in COLORMAPS:
        raise ConfigError(f"colormap '{colormap}' is unknown: use one of {', '.join(COLORMAPS)}")
    if single_map.ndim != 2:
        raise InputError(f"heatmap takes one (H, W) map; got shape {single_map.shape}")
    grey = np.clip(np.rint(single_map * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def heatmap_overlay(
    image: np.ndarray, single_map: np.ndarray, colormap: str = "jet", image_weight: float = 0.5
) -> np.ndarray:
    """Colormap blended over the image, as pytorch-grad-cam's ``show_cam_on_image``.

    ``x = (1 - w) * heat + w * image`` in [0, 1], divided by its max, as RGB uint8.
    """
    if not 0.0 <= image_weight <= 1.0:
        raise ConfigError(f"image_weight {image_weight} is outside [0, 1]")
    _check_rgb(image)
    if single_map.shape != image.shape[:2]:
        raise InputError(f"map {single_map.shape} and image {image.shape} differ in size")
    heat = heatmap(single_map, colormap).astype(np.float32) / 255.0
    mixed = (1.0 - image_weight) * heat + image_weight * image.astype(np.float32) / 255.0
    mixed = mixed / max(float(mixed.max()), 1e-12)
    return np.clip(np.rint(mixed * 255.0), 0, 255).astype(np.uint8)


def grid(
    pictures: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    columns: int = 8,
    cell: int = 192,
    captions: Sequence[str] | None = None,
) -> np.ndarray:
    """A grid of RGB uint8 pictures with titles, like keras-explainable's ``visualize``.

    At most 8 columns; every picture is scaled to fit a ``cell`` x ``cell`` square (aspect
    kept, white margins) under a title bar; ``captions``: a line under each picture too
    (wrapped onto 2 lines). Returns RGB uint8.
    """
    if not pictures:
        raise InputError("grid needs at least one picture")
    if titles is not None and len(titles) != len(pictures):
        raise InputError(f"{len(titles)} titles for {len(pictures)} pictures")
    columns = max(1, min(columns, 8, len(pictures)))
    rows = -(-len(pictures) // columns)
    if captions is not None and len(captions) != len(pictures):
        raise InputError(f"{len(captions)} captions for {len(pictures)} pictures")
    bar = max(14, cell // 10)
    under = 2 * bar if captions is not None else 0
    step = cell + bar + under
    sheet = np.full((rows * step, columns * cell, 3), 255, dtype=np.uint8)
    for index, picture in enumerate(pictures):
        pic = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
        _check_rgb(pic)
        h, w = pic.shape[:2]
        scale = min(cell / h, cell / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(np.ascontiguousarray(pic), (nw, nh), interpolation=interp)
        r, c = divmod(index, columns)
        top, left = r * step + bar + (cell - nh) // 2, c * cell + (cell - nw) // 2
        sheet[top : top + nh, left : left + nw] = small
        font = cv2.FONT_HERSHEY_SIMPLEX
        if titles is not None:
            origin = (c * cell + 3, r * step + bar - 4)
            text = titles[index][:40]
            cv2.putText(sheet, text, origin, font, bar / 30.0, (0, 0, 0), 1, cv2.LINE_AA)
        if captions is not None:
            chars = max(8, cell * 30 // (bar * 18))
            text = captions[index]
            for line, part in enumerate(_two_lines(text, chars)):
                origin = (c * cell + 3, r * step + bar + cell + (line + 1) * bar - 4)
                cv2.putText(sheet, part, origin, font, bar / 30.0, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def _two_lines(text: str, chars: int) -> tuple[str, str]:
    """``text`` in two lines of at most ``chars`` characters, broken after a ", " where one
    fits (so a class name is not cut in two), the rest of a longer text left out."""
    if len(text) <= chars:
        return text, ""
    cut = text.rfind(", ", 0, chars + 1)
    first, rest = (text[: cut + 1], text[cut + 2 :]) if cut > 0 else (text[:chars], text[chars:])
    return first, rest[:chars]
