"""TTA plans, known answers of the three modes, and how passes are batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ConfigError,
    ExplainConfig,
    Explainer,
    Pass,
    TTAConfig,
    plan_passes,
)
from cam_rt.runtime.maps.tta import InputSize, input_size, resize_input
from tests.onnx_models import Recorder, channel_metadata, channel_model


def test_plans() -> None:
    ke = plan_passes(TTAConfig((0.5, 1, 1.5, 2), True, "keras-explainable"))
    assert [(p.scale, p.flip) for p in ke] == [
        (1, False),
        (1, True),
        (0.5, False),
        (0.5, True),
        (1, False),
        (1, True),
        (1.5, False),
        (1.5, True),
        (2, False),
        (2, True),
    ]
    assert len(plan_passes(TTAConfig((0.5, 1, 1.5, 2), True, "mean"))) == 8
    assert plan_passes(TTAConfig((1, 1, 2), False, "occse")) == (Pass(1, False), Pass(2, False))
    assert plan_passes(None) == (Pass(1.0, False),)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scales": ()}, "scales is empty"),
        ({"scales": (0.5, 0)}, "scale 0 is invalid"),
        ({"scales": (-1.0,)}, "scale -1.0 is invalid"),
        ({"scales": (float("nan"),)}, "scale nan is invalid"),
        ({"mode": "max"}, "TTA mode 'max' is unknown"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TTAConfig(**kwargs)


def test_input_sizes() -> None:
    assert input_size(37, 53, 0.5, "keras-explainable") == (18, 26)  # truncation
    assert input_size(5, 7, 0.5, "occse") == (2, 4)  # 2.5 -> 2, 3.5 -> 4: half to even
    assert input_size(5, 7, 0.5, "mean") == (2, 4)
    assert input_size(3, 3, 0.1, "mean") == (1, 1)


@pytest.fixture
def step_image() -> np.ndarray:
    """4x4, red on the left half, green on the right half."""
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, :2, 0] = 255
    image[:, 2:, 1] = 255
    return image


def _explainer(path: Path, tta: TTAConfig | None, **kw: Any) -> Explainer:
    return Explainer(CamSession(path), ExplainConfig(tta=tta, classes=ClassSelection("all"), **kw))


def test_mean_mode_flip_known_answer(tmp_path: Path, step_image: np.ndarray) -> None:
    model = channel_model(tmp_path / "m.onnx")
    (r,) = _explainer(model, TTAConfig((1.0,), True, "mean")).explain(step_image)
    # The flipped pass is flipped back: red stays left, green right (a missing flip-back would
    # average to a constant and normalise to 0).
    np.testing.assert_allclose(r.maps[..., 0], np.tile([1, 1, 0, 0], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(r.maps[..., 1], np.tile([0, 0, 1, 1], (4, 1)), atol=1e-6)
    assert r.class_names == ("c0", "c1")


def test_mean_mode_scales_known_answer(tmp_path: Path, step_image: np.ndarray) -> None:
    model = channel_model(tmp_path / "m.onnx")
    (r,) = _explainer(model, TTAConfig((1.0, 2.0), False, "mean")).explain(step_image)
    # Scale 2: the 4-px step upsampled bilinear is [1,1,1,.75,.25,0,0,0]; back to 4 px it is
    # [1,.875,.125,0]; the mean with scale 1's [1,1,0,0] is [1,.9375,.0625,0].
    np.testing.assert_allclose(r.maps[..., 0], np.tile([1, 0.9375, 0.0625, 0], (4, 1)), atol=1e-6)


def test_occse_relu_per_pass_and_max_normalise(tmp_path: Path, step_image: np.ndarray) -> None:
    model = channel_model(tmp_path / "m.onnx", offset=0.5)  # maps are +-0.5
    (r,) = _explainer(model, TTAConfig((1.0,), True, "occse")).explain(step_image)
    # Each pass: ReLU -> [.5,.5,0,0]; two passes sum to [1,1,0,0]; / (max + 1e-5).
    np.testing.assert_allclose(
        r.maps[..., 0], np.tile([1, 1, 0, 0], (4, 1)) / (1 + 1e-5), rtol=1e-6
    )
    # keras-explainable style (ReLU after the sum) would give the same here; an image where a
    # pass is negative and another positive shows the difference:
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, 0, 0] = 255  # red column 0 only: maps .5 at column 0, -.5 elsewhere
    (occ,) = _explainer(model, TTAConfig((1.0,), False, "occse")).explain(image)
    (mean,) = _explainer(model, TTAConfig((1.0,), False, "mean")).explain(image)
    np.testing.assert_allclose(occ.maps[0, :, 0], [0.5 / (0.5 + 1e-5), 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(mean.maps[0, :, 0], [1, 0, 0, 0], atol=1e-6)


def test_vanilla_normalises_before_resizing(tmp_path: Path, step_image: np.ndarray) -> None:
    model = channel_model(tmp_path / "m.onnx", offset=0.5)
    (r,) = _explainer(model, None).explain(step_image)
    np.testing.assert_allclose(r.maps[..., 0], np.tile([1, 1, 0, 0], (4, 1)), atol=1e-6)


def test_flipped_twins_share_a_batch_and_sizes_are_grouped(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx"))
    recorder = Recorder(session)
    config = ExplainConfig(TTAConfig((0.5, 1.0), True, "mean"), batch_size=8, batch_flips=True)
    explainer = Explainer(session, config)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    images.insert(1, rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    explainer.explain(images)
    shapes = [b.shape for b in recorder.batches]
    assert sorted(shapes) == sorted([(6, 10, 15, 3), (6, 20, 30, 3), (2, 8, 8, 3), (2, 16, 16, 3)])
    for batch in recorder.batches:  # rows alternate unflipped, flipped twin
        np.testing.assert_array_equal(batch[1::2], batch[0::2][:, :, ::-1])


def test_keras_explainable_reuses_the_repeated_unscaled_pass(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx"))
    recorder = Recorder(session)
    tta = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "keras-explainable")
    Explainer(session, ExplainConfig(tta, batch_flips=True)).explain(
        np.zeros((16, 16, 3), np.uint8)
    )
    assert [b.shape[:3] for b in recorder.batches] == [
        (2, 16, 16),
        (2, 8, 8),
        (2, 24, 24),
        (2, 32, 32),
    ]


def test_small_batch_size_keeps_twins_together(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx"))
    recorder = Recorder(session)
    config = ExplainConfig(TTAConfig((1.0,), True), batch_size=1, batch_flips=True)
    explainer = Explainer(session, config)
    explainer.explain([np.zeros((8, 8, 3), np.uint8)] * 3)
    assert [b.shape[0] for b in recorder.batches] == [2, 2, 2]


def test_occse_input_is_pillow_bicubic_then_flip() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (9, 13, 3), dtype=np.uint8)
    got = resize_input(image, Pass(0.5, True), "occse")
    expected = np.asarray(Image.fromarray(image).resize((6, 4), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(got, expected[:, ::-1].astype(np.float32))
    assert resize_input(image, Pass(1.0, False), "occse").dtype == np.float32


TRAINED = channel_metadata(input_size=(224, 224))
FIXED = channel_metadata(input_size=(8, 8), fixed_size=True)


@pytest.mark.parametrize(
    ("text", "image", "metadata", "target"),
    [
        ("model", (375, 500), TRAINED, (224, 224)),
        ("auto", (375, 500), TRAINED, (224, 224)),  # the file records its size: model
        ("auto", (375, 500), channel_metadata(), (375, 500)),  # it does not: image
        ("auto", (375, 500), None, (375, 500)),
        ("image", (375, 500), TRAINED, (375, 500)),
        ("320x480", (375, 500), TRAINED, (320, 480)),
        ("448", (375, 500), TRAINED, (448, 597)),  # 500 * 448 / 375 = 597.33
        ("448", (500, 375), None, (597, 448)),
        ("3", (4, 6), None, (3, 4)),  # 6 * 3 / 4 = 4.5: half to even
        ("3", (4, 10), None, (3, 8)),  # 7.5 -> 8
        ("448", (9, 9), None, (448, 448)),
    ],
)
def test_input_size_targets(
    text: str, image: tuple[int, int], metadata: Any, target: tuple[int, int]
) -> None:
    assert InputSize.parse(text).target(*image, metadata) == target


def test_input_size_parse_and_fields() -> None:
    assert InputSize() == InputSize.parse("auto") == InputSize.parse(" AUTO ")
    assert InputSize.parse("320x480") == InputSize("size", size=(320, 480))
    assert InputSize.parse("448") == InputSize("side", side=448)
    assert [str(InputSize.parse(t)) for t in ("model", "image", "320x480", "448")] == [
        "model",
        "image",
        "320x480",
        "448",
    ]
    for bad in ("big", "0", "0x4", "3x", "-2", "1.5"):
        with pytest.raises(ConfigError, match=f"--input-size '{bad}' is not model, image"):
            InputSize.parse(bad)
    with pytest.raises(ConfigError, match="input_size mode 'huge' is unknown"):
        InputSize("huge")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"input_size size None must be \(height, width\)"):
        InputSize("size")
    with pytest.raises(ConfigError, match="input_size side 0 must be an integer >= 1"):
        InputSize("side")
    with pytest.raises(ConfigError, match="input_size side 3 is only for mode 'side'"):
        InputSize("image", side=3)
    with pytest.raises(ConfigError, match="does not record the input size"):
        InputSize("model").target(10, 10, channel_metadata())


def test_pass_sizes_are_relative_to_the_target_and_resized_once() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
    # keras-explainable truncates float32(s) * size of the target, not of the image.
    ke = resize_input(image, Pass(0.5, False), "keras-explainable", target=(37, 53))
    assert ke.shape == (18, 26, 3)
    bilinear = cv2.resize(image.astype(np.float32), (26, 18), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(ke, bilinear)  # straight from the image: one resize
    # mean: round half to even of the target (5x7 -> 2x4); area, as it shrinks the image.
    mean = resize_input(image, Pass(0.5, True), "mean", target=(5, 7))
    area = cv2.resize(image[:, ::-1].astype(np.float32), (4, 2), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(mean, area)
    # Enlarging past the image (target 40x60 at scale 2 = 80x120) is bilinear.
    big = resize_input(image, Pass(2.0, False), "mean", target=(40, 60))
    up = cv2.resize(image.astype(np.float32), (120, 80), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(big, up)
    # occse: Pillow bicubic from the original uint8 image to round(s * target), then flip.
    occ = resize_input(image, Pass(1.5, True), "occse", target=(5, 7))
    pil = np.asarray(Image.fromarray(image).resize((10, 8), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(occ, pil[:, ::-1].astype(np.float32))
    # A target equal to the image is today's path; bucket rounding applies to the pass size.
    np.testing.assert_array_equal(
        resize_input(image, Pass(1.0, False), "mean", target=(60, 90)),
        resize_input(image, Pass(1.0, False), "mean"),
    )
    assert resize_input(image, Pass(1.0, False), "mean", 16, target=(40, 40)).shape == (48, 48, 3)


@pytest.mark.parametrize(
    ("size", "tta", "bucket", "message"),
    [
        ("image", None, 0, "--input-size image would feed it other sizes; pass --input-size model"),
        ("448", None, 0, "--input-size 448 would feed it other sizes"),
        ("8x12", None, 0, "--input-size 8x12 would feed it other sizes"),
        (
            "auto",
            TTAConfig((0.5, 1.0)),
            0,
            "TTA scales need a dynamic-size export; pass --scales 1",
        ),
        ("model", TTAConfig((2.0,), False, "occse"), 0, "TTA scales need a dynamic-size export"),
        ("model", None, 5, "--bucket 5 would change it; pass --bucket 0"),
    ],
)
def test_fixed_size_refusals(size: str, tta: TTAConfig | None, bucket: int, message: str) -> None:
    expected = f"^f.onnx takes only 8x8 inputs \\(its head needs that size\\): {message}"
    with pytest.raises(ConfigError, match=expected):
        InputSize.parse(size).check(FIXED, tta, bucket, "f.onnx")


def test_fixed_size_accepts_its_size_flips_and_scale_one() -> None:
    for text in ("auto", "model", "8x8"):
        InputSize.parse(text).check(FIXED, TTAConfig((1.0,), True), 8, "f.onnx")
    InputSize().check(FIXED, TTAConfig((1.0,), True, "keras-explainable"), 0, "f.onnx")
    with pytest.raises(ConfigError, match="^d.onnx does not record the input size it was"):
        InputSize("model").check(channel_metadata(), None, 0, "d.onnx")


def test_keras_explainable_sizes_are_float32() -> None:
    # tf.cast(float32(0.7) * float32(90), int32) == 63 (checked in TF); float64 0.7 * 90 gives 62
    assert input_size(90, 90, 0.7, "keras-explainable") == (63, 63)


def test_tta_config_takes_loose_sequences() -> None:
    assert TTAConfig(scales=np.array([0.5, 1])).scales == (0.5, 1.0)
    assert TTAConfig(scales=(np.float32(0.5),)).scales == (0.5,)
    with pytest.raises(ConfigError, match="must be a sequence"):
        TTAConfig(scales=0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scale True is invalid"):
        TTAConfig(scales=(True,))
