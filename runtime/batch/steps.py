"""The decode and explain steps of a run, shared by the local engine and the Ray actors.

(The other steps: discover in ``inputs``, render and write in ``render``, record in
``records``.) An image that fails a step, whatever the exception (:func:`failure`), becomes an
error for that image only: a batch that fails is explained again image by image, so one bad
image fails alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CamRtError, InputError
from ..explain import CamResult, Explainer, Label
from .inputs import InputItem
from .io import LoadedImage, read_image

__all__ = ["Explained", "decode", "explain_images", "failure"]


@dataclass(frozen=True)
class Explained:
    """An image through the explain step: what the render, write and record steps take.
    ``timings``: ``decode_s`` and ``explain_s`` seconds (rounded to microseconds)."""

    item: InputItem
    result: CamResult
    image: LoadedImage
    timings: dict[str, float]


def _kind(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def failure(exc: BaseException, step: str = "processing") -> Exception:
    """The error to record for an image whose ``step`` raised ``exc``: cam-rt's own errors as
    they are, MemoryError with advice, anything else (a decoder's struct.error, cv2.error,
    KeyError, ...) as an InputError naming it, on one line."""
    if isinstance(exc, MemoryError):
        return InputError("not enough memory for this image: lower --batch-size or --max-pixels")
    if isinstance(exc, CamRtError):
        return exc
    detail = " ".join(str(exc).split())
    return InputError(
        f"{step} failed ({_kind(exc)}{': ' + detail if detail else ''}): the file may be "
        "damaged; re-save it, or report this error with the file"
    )


def decode(path: Path, max_pixels: int) -> tuple[LoadedImage, float]:
    """The image file at ``path`` and the seconds reading it took (InputError if unusable,
    whatever the decoder raised)."""
    start = time.perf_counter()
    try:
        loaded = read_image(path, max_pixels)
    except Exception as exc:
        raise failure(exc, "decoding") from exc
    return loaded, time.perf_counter() - start


def _explain(
    explainer: Explainer, image: LoadedImage, labels: Sequence[Label] | None
) -> CamResult | Exception:
    try:
        return explainer.explain(image.pixels, labels=None if labels is None else [labels])[0]
    except Exception as exc:
        return failure(exc, "explaining")


def explain_images(
    explainer: Explainer,
    images: Sequence[LoadedImage],
    labels: Sequence[Sequence[Label] | None],
) -> tuple[list[CamResult | Exception], float]:
    """One result or error per image, and the seconds per image (the call's time shared).

    The images are explained in one call (the explainer splits their TTA passes into ONNX
    Runtime runs of its ``batch_size`` model inputs); if that fails, each image alone.
    ``labels``: per image, its ground-truth classes, or None for the explainer's selection
    (all None or none None).
    """
    if not images:
        return [], 0.0
    start = time.perf_counter()
    use = None if all(v is None for v in labels) else [v or () for v in labels]
    out: list[CamResult | Exception]
    try:
        out = list(explainer.explain([i.pixels for i in images], labels=use))
    except Exception as exc:  # whatever it is, it fails the image that causes it only
        if len(images) == 1:
            out = [failure(exc, "explaining")]
        else:
            out = [_explain(explainer, i, v) for i, v in zip(images, labels, strict=True)]
    return out, (time.perf_counter() - start) / len(images)
