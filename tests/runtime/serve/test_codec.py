"""Request bodies to images (the hardened reader, the size checked before decoding) and
results to JSON (the run's renderer)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer
from cam_rt.runtime.batch.io import PixelLimitError
from cam_rt.runtime.batch.render import RenderConfig, render
from cam_rt.runtime.errors import ConfigError, InputError, ModelLoadError
from cam_rt.runtime.serve.codec import (
    BodyTooLarge,
    decode_image,
    decode_instances,
    error_status,
    explanation,
    render_result,
)
from cam_rt.runtime.serve.config import RequestOptions
from tests.onnx_models import channel_model

from .servers import bomb_png, encoded, picture


def test_decodes_what_the_cli_reads() -> None:
    rgb = picture(20, 30)
    assert np.array_equal(decode_image(encoded(rgb, "PNG"), 10_000).pixels, rgb)
    assert decode_image(encoded(rgb, "JPEG"), 10_000).pixels.shape == (20, 30, 3)
    gray = decode_image(encoded(rgb[..., 0]), 10_000)
    assert gray.conversions == ("grayscale to RGB",)
    assert np.array_equal(gray.pixels[..., 2], rgb[..., 0])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the request body is empty"),
        (b"hello, this is text", "the request body is not an image Pillow can read"),
        (encoded(picture(40, 40))[:200], "the request body: corrupt or truncated image data"),
    ],
)
def test_bad_bodies_are_input_errors(body: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        decode_image(body, 10_000)
    assert error_status(caught.value) == 400


def test_a_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(PixelLimitError, match=r"is 100000x100000 pixels .* above --max-pixels"):
        decode_image(bomb_png(), 25_000_000)
    assert error_status(PixelLimitError("x")) == 413
    assert error_status(BodyTooLarge("x")) == 413
    assert error_status(ConfigError("x")) == 400
    assert error_status(ModelLoadError("x")) == 422
    assert error_status(KeyError("x")) == 500


def test_kserve_instances() -> None:
    data = [b"\x01\x02", b"png bytes"]
    b64 = [base64.b64encode(d).decode() for d in data]
    body = {"instances": [{"b64": b64[0]}, {"image_bytes": {"b64": b64[1]}}]}
    assert decode_instances(body, 8) == data
    for bad, message in [
        ([], "the body must be JSON"),
        ({"instances": []}, "is empty"),
        ({"instances": [{"b64": b64[0]}, {"url": "x"}]}, 'instance 1 is not {"b64"'),
        ({"instances": [{"b64": "!!!"}]}, "instance 0: its b64 is not valid base64"),
        ({"instances": [{"b64": b64[0]}] * 3}, "3 instances is above the limit of 2"),
    ]:
        with pytest.raises(InputError, match=message):
            decode_instances(bad, 2)


def test_the_json_of_a_result(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3, offset=0.2, class_names=("r", "g", "b"))
    explainer = Explainer(CamSession(model), ExplainConfig(classes=ClassSelection("all")))
    image = decode_image(encoded(picture(24, 32)), 10_000)
    (result,) = explainer.explain(image.pixels)
    rendered = render_result(result, image, 0.3)
    options = RequestOptions(tta=False, outputs=("overlay", "seeds", "maps", "boxes"))
    payload = explanation(result, rendered, options, {"queue_s": 0.25})
    assert payload["size"] == [24, 32]
    assert [c["name"] for c in payload["classes"]] == ["r", "g", "b"]
    first = payload["classes"][0]
    assert first["probability"] == pytest.approx(float(result.probabilities[0]), abs=1e-6)
    assert first["score"] == pytest.approx(float(result.scores[0]), abs=1e-6)
    assert [b["class_id"] for b in payload["boxes"]] == [0, 1, 2]
    assert payload["timings"] == {"queue_s": 0.25}
    outputs = payload["outputs"]
    run = render("image", result, image.pixels, RenderConfig(bg_threshold=0.3))
    assert base64.b64decode(outputs["overlay"]) == run.encoded("overlay")  # cam-rt run's file
    assert base64.b64decode(outputs["seeds"]) == run.encoded("seeds")
    assert base64.b64decode(outputs["boxes"]) == run.encoded("boxes.png")
    assert outputs["maps"]["format"] == "npz"
    with np.load(io.BytesIO(base64.b64decode(outputs["maps"]["b64"]))) as npz:
        assert np.array_equal(npz["maps"], result.maps.astype(np.float16))
    raw = explanation(
        result, rendered, RequestOptions(tta=False, outputs=("maps",), maps="float16"), {}
    )
    maps = raw["outputs"]["maps"]
    assert maps["shape"] == [24, 32, 3] and maps["class_ids"] == [0, 1, 2]
    flat = np.frombuffer(base64.b64decode(maps["b64"]), "<f2").reshape(maps["shape"])
    assert np.array_equal(flat, result.maps.astype(np.float16))
