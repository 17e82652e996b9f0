"""Shape planning: which (batch, height, width) inputs a run will feed the model.

:class:`~cam_rt.runtime.explain.Explainer` batches by the rules here (:func:`run_groups`,
:func:`image_chunks`), so the plans below are exactly what it runs:

- :func:`batch_shapes`: the inputs of one ``explain`` call on images of one size;
- :func:`shape_profile`: a TensorRT :class:`ShapeProfile` covering every input for a range of
  image sides (the engine is built once for it);
- :func:`warmup_shapes`: the distinct inputs to run once before serving (``cam-rt warmup``,
  Triton's ``model_warmup``); ``tools.bench.warm_up`` runs them;
- :func:`oversized_input`: whether an image's largest input would exceed
  ``ExplainConfig.max_input_pixels`` (checked before anything is resized).

The size arithmetic of one pass (TTA scale, buckets) is :func:`~cam_rt.runtime.maps.tta.input_size`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .backend.providers import ShapeProfile
from .errors import ConfigError
from .maps.images import describe_pixels
from .maps.tta import InputSize, Pass, input_size, plan_passes
from .metadata import ModelMetadata

if TYPE_CHECKING:  # explain imports this module at run time
    from .explain import ExplainConfig

__all__ = [
    "batch_shapes",
    "image_chunks",
    "oversized_input",
    "run_groups",
    "shape_profile",
    "warmup_shapes",
]

Shape = tuple[int, int, int]


def run_groups(passes: Sequence[Pass], batch_flips: bool) -> list[list[Pass]]:
    """Distinct passes in run groups: a scale's flipped and unflipped passes together when
    ``batch_flips``, else each pass alone."""
    if not batch_flips:
        return [[p] for p in passes]
    groups: dict[float, list[Pass]] = defaultdict(list)
    for p in passes:
        groups[p.scale].append(p)
    return list(groups.values())


def image_chunks(members: Sequence[int], batch_size: int, group: int) -> list[Sequence[int]]:
    """Images per run: ``batch_size // group`` of them (at least one), so a run holds at most
    ``max(batch_size, group)`` inputs."""
    per_batch = max(1, batch_size // group)
    return [members[i : i + per_batch] for i in range(0, len(members), per_batch)]


def batch_shapes(
    config: ExplainConfig,
    height: int,
    width: int,
    images: int = 1,
    metadata: ModelMetadata | None = None,
) -> list[Shape]:
    """The (batch, h, w) model inputs :meth:`Explainer.explain` runs for ``images`` images of
    ``height`` x ``width`` pixels, in order (what a GPU engine sees; used for warm-up and for
    TensorRT profiles). ``batch_flips=None`` counts as batched, as on a GPU. ``metadata``: the
    model's, for ``config.input_size``; without it (a profile planned before the file is open)
    ``auto`` and ``model`` stand for the image's size."""
    passes = list(dict.fromkeys(plan_passes(config.tta)))
    mode = config.tta.mode if config.tta is not None else None
    base_h, base_w = _planned(config.input_size, metadata).target(height, width, metadata)
    shapes = []
    for group in run_groups(passes, config.batch_flips is not False):
        h, w = input_size(base_h, base_w, group[0].scale, mode, config.bucket)
        for chunk in image_chunks(range(images), config.batch_size, len(group)):
            shapes.append((len(chunk) * len(group), h, w))
    return shapes


def oversized_input(
    config: ExplainConfig, image: tuple[int, int], target: tuple[int, int], what: str
) -> str | None:
    """The message refusing ``what`` (``image 0``, an image of ``image`` (H, W) pixels resized
    to ``target`` at scale 1) when its largest model input, at the largest TTA scale (rounded
    as the mode rounds) and bucketed, is above ``config.max_input_pixels``; None if it fits.
    The message names what to lower: --bucket, --scales or --input-size."""
    limit = config.max_input_pixels
    mode = config.tta.mode if config.tta is not None else None
    sizes = {
        p.scale: input_size(*target, p.scale, mode, config.bucket) for p in plan_passes(config.tta)
    }
    scale, (h, w) = max(sizes.items(), key=lambda kv: kv[1][0] * kv[1][1])
    if h * w <= limit:
        return None
    plain_h, plain_w = input_size(*target, scale, mode)
    unit_h, unit_w = input_size(*target, 1.0, mode)
    if config.bucket and plain_h * plain_w <= limit:
        cause, fix = f" with --bucket {config.bucket}", "lower --bucket"
    elif scale != 1.0 and unit_h * unit_w <= limit:
        cause, fix = f" at TTA scale {scale:g}", "lower --scales"
    elif tuple(target) != tuple(image):
        cause, fix = f" at --input-size {config.input_size}", "lower --input-size"
    else:
        cause, fix = "", "give a smaller image or --input-size,"
    return (
        f"{what} ({image[0]}x{image[1]}){cause} would run at {h}x{w} pixels "
        f"({describe_pixels(h * w)}), above --max-pixels {limit} ({describe_pixels(limit)}): "
        f"{fix} or raise --max-pixels"
    )


def _planned(size: InputSize, metadata: ModelMetadata | None) -> InputSize:
    """``size``, or ``image`` for ``model`` when the model's size is not known yet."""
    return InputSize("image") if metadata is None and size.mode == "model" else size


def shape_profile(
    config: ExplainConfig, min_side: int, max_side: int, metadata: ModelMetadata | None = None
) -> ShapeProfile:
    """A TensorRT profile holding every input :meth:`Explainer.explain` can run for images whose
    sides lie in ``min_side..max_side`` (any aspect ratio, up to ``batch_size`` images of one
    size at a time). The optimum is the unscaled pass of one ``max_side`` square image.
    ``metadata``: the model's, so that ``input_size`` ``model`` plans its trained size (without
    it, a profile planned before the file is open covers the images' own sizes)."""
    if not 1 <= min_side <= max_side:
        raise ConfigError(
            f"image sides {min_side}..{max_side} are not a range: need 1 <= min <= max"
        )
    shapes = []
    for h in (min_side, max_side):  # pass sizes grow with the image's: the corners suffice
        for w in (min_side, max_side):
            for images in (1, config.batch_size):
                shapes += batch_shapes(config, h, w, images, metadata)
    mode = config.tta.mode if config.tta is not None else None
    base = _planned(config.input_size, metadata).target(max_side, max_side, metadata)
    side_h, side_w = input_size(*base, 1.0, mode, config.bucket)
    return ShapeProfile.covering(shapes, opt=(min(s[0] for s in shapes), side_h, side_w))


def warmup_shapes(
    config: ExplainConfig,
    sizes: Sequence[tuple[int, int]] = (),
    min_side: int = 0,
    max_side: int = 0,
    metadata: ModelMetadata | None = None,
) -> list[Shape]:
    """Every distinct (batch, h, w) input :meth:`Explainer.explain` runs for images of
    ``sizes``, or of any size with sides in ``min_side..max_side`` (needs ``config.bucket``:
    without buckets each pixel size is a shape of its own). Batches of one image and of
    ``batch_size`` images are covered; sorted by pixel count. ``metadata``: the model's, for
    ``config.input_size`` (see :func:`batch_shapes`)."""
    images = list(sizes)
    if not images:
        if config.bucket <= 0:
            raise ConfigError(
                "warming up a range of image sizes needs --bucket N (without buckets every "
                "pixel size is a shape of its own); or list the image sizes with --sizes"
            )
        if not 1 <= min_side <= max_side:
            raise ConfigError(
                f"image sides {min_side}..{max_side} are not a range (1 <= min <= max)"
            )
        sides = _bucket_sides(config, min_side, max_side)
        images = [(h, w) for h in sides for w in sides]
    shapes: set[Shape] = set()
    for h, w in images:
        target = _planned(config.input_size, metadata).target(h, w, metadata)
        problem = oversized_input(config, (h, w), target, "warm-up size")
        if problem:
            raise ConfigError(problem)
        for count in sorted({1, config.batch_size}):
            shapes.update(batch_shapes(config, h, w, count, metadata))
    return sorted(shapes, key=lambda s: (s[0] * s[1] * s[2], s))


def _bucket_sides(config: ExplainConfig, min_side: int, max_side: int) -> list[int]:
    """One representative side in ``min_side..max_side`` per distinct tuple of bucketed pass
    sides (one per TTA scale)."""
    mode = config.tta.mode if config.tta is not None else None
    scales = sorted({p.scale for p in plan_passes(config.tta)})
    seen: dict[tuple[int, ...], int] = {}
    for side in range(min_side, max_side + 1):
        key = tuple(input_size(side, side, s, mode, config.bucket)[0] for s in scales)
        seen.setdefault(key, side)
    return sorted(seen.values())
