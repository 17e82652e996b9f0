"""Request bodies to images and results to JSON, without any HTTP: what the routes call.

Images are read by the runs' own reader (:func:`~cam_rt.runtime.batch.io.read_image`): the
pixel count is checked from the header before decoding (:class:`PixelLimitError`, HTTP 413),
and whatever a decoder raises is one :class:`InputError` (HTTP 400). The pictures are drawn by
the runs' renderer (:func:`~cam_rt.runtime.batch.render.render`), so an overlay, heatmap, seeds
PNG or maps ``.npz`` of the server is the file ``cam-rt run`` writes for the same image.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..batch.io import LoadedImage, PixelLimitError, read_image
from ..batch.render import RenderConfig, Rendered, render
from ..errors import CamRtError, ConfigError, InputError
from ..explain import CamResult
from .config import RequestOptions

__all__ = [
    "BodyTooLarge",
    "decode_image",
    "decode_instances",
    "error_status",
    "explanation",
    "render_result",
]

_KIND_FILES = {"boxes": "boxes.png"}  # an output kind -> the Rendered part holding it


class BodyTooLarge(InputError):
    """A request body above ``--max-body-mb``."""


def decode_image(body: bytes, max_pixels: int, name: str = "the request body") -> LoadedImage:
    """The image of an encoded file's bytes (any format ``cam-rt run`` reads), RGB uint8."""
    return read_image(body, max_pixels, name)


def decode_instances(payload: Any, limit: int) -> list[bytes]:
    """The image bytes of a KServe v1 body ``{"instances": [{"b64": ...}, ...]}`` (an instance
    may also be ``{"image_bytes": {"b64": ...}}``, TensorFlow Serving's form); InputError
    naming the first bad instance; at most ``limit`` instances."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("instances"), list):
        raise InputError('the body must be JSON {"instances": [{"b64": "<base64 image>"}, ...]}')
    instances: list[Any] = payload["instances"]
    if not instances:
        raise InputError('"instances" is empty: give at least one {"b64": ...}')
    if len(instances) > limit:
        raise InputError(f"{len(instances)} instances is above the limit of {limit} a request")
    out = []
    for i, item in enumerate(instances):
        if isinstance(item, Mapping) and isinstance(item.get("image_bytes"), Mapping):
            item = item["image_bytes"]
        text = item.get("b64") if isinstance(item, Mapping) else None
        if not isinstance(text, str):
            raise InputError(f'instance {i} is not {{"b64": "<base64 image>"}}')
        try:
            out.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise InputError(f"instance {i}: its b64 is not valid base64") from None
    return out


def error_status(exc: BaseException) -> int:
    """The HTTP status of an error a request caused."""
    if isinstance(exc, (PixelLimitError, BodyTooLarge, MemoryError)):
        return 413
    if isinstance(exc, (ConfigError, InputError)):
        return 400
    if isinstance(exc, CamRtError):
        return 422
    return 500


def render_result(result: CamResult, image: LoadedImage, bg_threshold: float) -> Rendered:
    """The boxes and pictures of ``result`` over its image (the run's renderer)."""
    return render("image", result, image.pixels, RenderConfig(bg_threshold=bg_threshold))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _maps(result: CamResult, rendered: Rendered, form: str) -> dict[str, Any]:
    if form == "npz":  # the NAME.maps.npz of cam-rt run
        return {"format": "npz", "b64": _b64(rendered.encoded("maps"))}
    maps = np.ascontiguousarray(result.maps, dtype="<f2")
    return {
        "format": "float16",
        "shape": list(maps.shape),
        "class_ids": list(result.class_ids),
        "b64": _b64(maps.tobytes()),
    }


def explanation(
    result: CamResult,
    rendered: Rendered,
    options: RequestOptions,
    timings: Mapping[str, float],
    conversions: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON of one image's result: ``size`` [H, W], the explained ``classes`` (id, name,
    probability, score), ``boxes`` (per class: largest and all regions), ``timings`` (s),
    ``outputs`` (base64 PNGs; maps as base64 ``.npz`` or float16), ``conversions``."""
    probs, scores = result.probabilities, result.scores
    outputs: dict[str, Any] = {}
    for kind in options.outputs:
        if kind == "maps":
            outputs[kind] = _maps(result, rendered, options.maps)
        else:
            outputs[kind] = _b64(rendered.encoded(_KIND_FILES.get(kind, kind)))
    return {
        "size": list(result.size),
        "classes": [
            {
                "id": cid,
                "name": name,
                "probability": round(float(probs[cid]), 6),
                "score": round(float(scores[cid]), 6),
            }
            for cid, name in zip(result.class_ids, result.class_names, strict=True)
        ],
        "boxes": list(rendered.regions),
        "conversions": list(conversions),
        "timings": {k: round(v, 6) for k, v in timings.items()},
        "outputs": outputs,
    }
