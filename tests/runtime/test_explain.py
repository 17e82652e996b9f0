"""Explainer inputs and class selection: conversions, refusals and their messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ConfigError,
    ExplainConfig,
    Explainer,
    InputError,
    InputSize,
    TTAConfig,
    prepare_image,
)
from tests.onnx_models import Recorder, channel_model


@pytest.fixture
def session(tmp_path: Path) -> CamSession:
    return CamSession(
        channel_model(
            tmp_path / "m.onnx", channels=3, stride=4, class_names=("red", "green", "blue")
        )
    )


def _image(r: int, g: int, b: int, size: tuple[int, int] = (8, 8)) -> np.ndarray:
    image = np.zeros((*size, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = r, g, b
    image[0, 0] = 0  # some structure
    return image


def test_predicted_classes_sigmoid_threshold(session: CamSession) -> None:
    explainer = Explainer(
        session, ExplainConfig(classes=ClassSelection("predicted", threshold=0.6))
    )
    # scores are the channel means /255: sigmoid(~1) = .73, sigmoid(~0) = .5
    (r,) = explainer.explain(_image(255, 0, 255))
    assert r.class_ids == (0, 2) and r.class_names == ("red", "blue")
    assert r.maps.shape == (8, 8, 2) and r.maps.dtype == np.float32
    np.testing.assert_allclose(r.probabilities, 1 / (1 + np.exp(-r.scores)), rtol=1e-6)


def test_softmax_predicts_top1(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "s.onnx", channels=3, activation="softmax")
    (r,) = Explainer(CamSession(path)).explain(_image(10, 200, 100))
    assert r.class_ids == (1,)
    assert abs(float(r.probabilities.sum()) - 1) < 1e-6


def test_top_k_all_and_fixed(session: CamSession) -> None:
    image = _image(10, 200, 100)
    top2 = Explainer(session, ExplainConfig(classes=ClassSelection.parse("top-2")))
    assert top2.explain(image)[0].class_ids == (1, 2)
    every = Explainer(session, ExplainConfig(classes=ClassSelection.parse("all")))
    assert every.explain(image)[0].class_ids == (0, 1, 2)
    fixed = Explainer(session, ExplainConfig(classes=ClassSelection.parse("blue,0")))
    assert fixed.explain(image)[0].class_ids == (2, 0)


def test_per_image_labels(session: CamSession) -> None:
    explainer = Explainer(session)
    results = explainer.explain([_image(1, 2, 3), _image(3, 2, 1)], labels=[["green"], [0, 2]])
    assert [r.class_ids for r in results] == [(1,), (0, 2)]
    with pytest.raises(InputError, match="1 label lists for 2 images"):
        explainer.explain([_image(1, 2, 3)] * 2, labels=[[0]])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["gren"], r"class 'gren' is not one of the model's classes \(closest: green"),
        ([7], r"class id 7 is out of range: the model has 3 classes \(0..2\)"),
    ],
)
def test_unknown_classes(session: CamSession, labels: list[Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Explainer(session).explain(_image(1, 2, 3), labels=[labels])
    with pytest.raises(ConfigError, match=message):
        Explainer(session, ExplainConfig(classes=ClassSelection("fixed", labels=tuple(labels))))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("predicted", ClassSelection("predicted")),
        ("top-3", ClassSelection("top-k", k=3)),
        ("top5", ClassSelection("top-k", k=5)),
        ("cat, 3", ClassSelection("fixed", labels=("cat", 3))),
    ],
)
def test_parse_selection(text: str, expected: ClassSelection) -> None:
    assert ClassSelection.parse(text) == expected


def test_selection_errors() -> None:
    with pytest.raises(ConfigError, match="k >= 1"):
        ClassSelection.parse("top-0")
    with pytest.raises(ConfigError, match="needs labels"):
        ClassSelection("fixed")
    with pytest.raises(ConfigError, match="threshold 2 is outside"):
        ClassSelection(threshold=2)
    with pytest.raises(ConfigError, match="batch_size 0"):
        ExplainConfig(batch_size=0)


def test_grayscale_is_converted() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = prepare_image(gray)
    assert rgb.shape == (3, 4, 3)
    np.testing.assert_array_equal(rgb[..., 2], gray)
    np.testing.assert_array_equal(prepare_image(gray[..., None]), rgb)


def test_rgba_is_refused_or_dropped() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(InputError, match=r"image 3 has 4 channels \(RGBA\).*alpha='drop'"):
        prepare_image(rgba, 3)
    assert prepare_image(rgba, alpha="drop").shape == (4, 4, 3)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 4, 3), np.uint16), "dtype uint16; expected uint8 RGB"),
        (np.zeros((0, 4, 3), np.uint8), "it is empty"),
        (np.full((4, 4, 3), np.nan, np.float32), "48 non-finite values"),
        (np.full((4, 4, 3), 300.0), r"values in \[300, 300\]; expected RGB in 0..255"),
        (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\); expected \(H, W, 3\)"),
        ([[1, 2]], "is a list; expected a NumPy array"),
    ],
)
def test_bad_images(image: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        prepare_image(image)


def test_float_images_are_accepted() -> None:
    x = np.full((2, 2, 3), 127.6)
    assert prepare_image(x).dtype == np.uint8 and prepare_image(x)[0, 0, 0] == 128


def test_empty_batch_and_too_small(session: CamSession) -> None:
    explainer = Explainer(session)
    with pytest.raises(InputError, match="the batch is empty"):
        explainer.explain([])
    with pytest.raises(
        InputError, match="image 1 is 3x9 pixels, smaller than the model's output stride 4"
    ):
        explainer.explain([_image(1, 1, 1), _image(1, 1, 1, (3, 9))])


def test_batch_array_and_timings(session: CamSession) -> None:
    timings: dict[str, float] = {}
    results = Explainer(session).explain(np.zeros((3, 8, 12, 3), np.uint8), timings=timings)
    assert len(results) == 3 and all(r.size == (8, 12) for r in results)
    assert {"prepare", "resize_input", "onnxruntime", "tta_resize", "normalize"} <= set(timings)
    assert all(v >= 0 for v in timings.values())


def _step(height: int, width: int) -> np.ndarray:
    """Red on the left half, green on the right half."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2, 0] = 255
    image[:, width // 2 :, 1] = 255
    return image


def test_model_input_size_maps_come_back_at_image_size(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx", input_size=(2, 4)))
    recorder = Recorder(session)
    all_classes = ClassSelection("all")
    (r,) = Explainer(session, ExplainConfig(classes=all_classes)).explain(_step(4, 8))
    # The default for a file that records its size: the 4x8 image runs at 2x4 (area: the step
    # stays [1, 1, 0, 0]), and the normalized map is resized bilinear back to 4x8.
    assert [b.shape for b in recorder.batches] == [(1, 2, 4, 3)]
    assert r.maps.shape == (4, 8, 2)
    np.testing.assert_allclose(r.maps[..., 0], np.tile([1, 1, 1, 0.75, 0.25, 0, 0, 0], (4, 1)))
    image = ExplainConfig(classes=all_classes, input_size=InputSize("image"))
    (native,) = Explainer(session, image).explain(_step(4, 8))
    assert recorder.batches[-1].shape == (1, 4, 8, 3)
    np.testing.assert_allclose(native.maps[..., 0], np.tile([1, 1, 1, 1, 0, 0, 0, 0], (4, 1)))


def test_tta_scales_are_relative_to_the_trained_size(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx", input_size=(8, 8)))
    recorder = Recorder(session)
    config = ExplainConfig(TTAConfig((0.5, 1.0, 2.0), True), batch_flips=True)
    images = [_step(20, 30), _step(16, 16)]
    results = Explainer(session, config).explain(images)
    # Both images run at the trained size, so they share every batch: 2 images x 2 twins.
    assert [b.shape for b in recorder.batches] == [(4, 4, 4, 3), (4, 8, 8, 3), (4, 16, 16, 3)]
    assert [r.maps.shape[:2] for r in results] == [(20, 30), (16, 16)]
    ke = TTAConfig((0.5, 1.0), False, "keras-explainable")
    trained = CamSession(channel_model(tmp_path / "k.onnx", input_size=(37, 53)))
    recorder = Recorder(trained)
    Explainer(trained, ExplainConfig(ke)).explain(_step(10, 10))
    assert [b.shape[1:3] for b in recorder.batches] == [(37, 53), (18, 26)]  # truncation


def test_fixed_size_file_refuses_up_front(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "f.onnx", input_size=(8, 8), fixed_size=True)
    session = CamSession(path)
    recorder = Recorder(session)
    fixed = f"{path} takes only 8x8 inputs \\(its head needs that size\\)"
    with pytest.raises(ConfigError, match=f"{fixed}: TTA scales need .*; pass --scales 1"):
        Explainer(session, ExplainConfig(TTAConfig((0.5, 1.0))))
    with pytest.raises(ConfigError, match=f"{fixed}: --input-size image would feed it"):
        Explainer(session, ExplainConfig(input_size=InputSize("image")))
    assert recorder.batches == []  # nothing ran
    (r,) = Explainer(session, ExplainConfig(TTAConfig((1.0,), True))).explain(_step(20, 30))
    assert [b.shape for b in recorder.batches] == [(1, 8, 8, 3), (1, 8, 8, 3)]
    assert r.maps.shape[:2] == (20, 30)


def test_input_size_config_errors(session: CamSession) -> None:
    with pytest.raises(ConfigError, match="input_size 'model' must be an InputSize"):
        ExplainConfig(input_size="model")  # type: ignore[arg-type]
    explainer = Explainer(session, ExplainConfig(input_size=InputSize.parse("2x3")))
    with pytest.raises(InputError, match="image 0 would run at 2x3 \\(input size 2x3\\), small"):
        explainer.explain(_image(1, 2, 3))


def test_configs_refuse_strings_for_numbers() -> None:
    with pytest.raises(ConfigError, match="batch_size '8'"):
        ExplainConfig(batch_size="8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="threshold '0.5'"):
        ClassSelection(threshold="0.5")  # type: ignore[arg-type]


def test_labels_must_be_one_list_per_image(tmp_path: Path) -> None:
    explainer = Explainer(CamSession(channel_model(tmp_path / "m.onnx")))
    with pytest.raises(InputError, match="one list per image"):
        explainer.explain(np.zeros((8, 8, 3), np.uint8), labels=["c0"])
    with pytest.raises(InputError, match="images is a NoneType"):
        explainer.explain(None)  # type: ignore[arg-type]


_OVERSIZED = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))  # a bug here cannot swap
import numpy as np
from cam_rt.runtime import (
    CamSession, ClassSelection, ExplainConfig, Explainer, InputSize, TTAConfig
)
model, height, width, scales, bucket, size = json.loads(sys.argv[1])
config = ExplainConfig(
    tta=TTAConfig(tuple(scales)) if scales else None,
    classes=ClassSelection("all"),
    bucket=bucket,
    input_size=InputSize.parse(size),
)
try:
    Explainer(CamSession(model), config).explain(np.zeros((height, width, 3), np.uint8))
except Exception as exc:
    print(type(exc).__name__ + ": " + str(exc))
"""


@pytest.mark.parametrize(
    ("height", "width", "scales", "bucket", "size", "message"),
    [
        (
            1536,
            2048,
            [1, 30],
            0,
            "image",
            "image 0 (1536x2048) at TTA scale 30 would run at 46080x61440 pixels (2,831 MP), "
            "above --max-pixels 100000000 (100 MP): lower --scales or raise --max-pixels",
        ),
        (
            64,
            48,
            [],
            100000,
            "image",
            "image 0 (64x48) with --bucket 100000 would run at 100000x100000 pixels "
            "(10,000 MP), above --max-pixels 100000000 (100 MP): lower --bucket or raise "
            "--max-pixels",
        ),
        (
            8,
            8,
            [0.5, 1],
            0,
            "20000x20000",
            "image 0 (8x8) at --input-size 20000x20000 would run at 20000x20000 pixels "
            "(400 MP), above --max-pixels 100000000 (100 MP): lower --input-size or raise "
            "--max-pixels",
        ),
    ],
)
def test_inputs_above_max_pixels_are_refused_before_allocating(
    tmp_path: Path,
    height: int,
    width: int,
    scales: list[float],
    bucket: int,
    size: str,
    message: str,
) -> None:
    """The largest input an image would make (size x largest scale, rounded as the mode
    rounds, then bucketed) is checked before any is resized. Run in a process whose address
    space is capped at 2 GB (the refused inputs would take 34 GB and 120 GB)."""
    import json
    import subprocess
    import sys

    model = str(channel_model(tmp_path / "m.onnx", channels=3))
    args = json.dumps([model, height, width, scales, bucket, size])
    proc = subprocess.run(
        [sys.executable, "-c", _OVERSIZED, args], capture_output=True, text=True, check=False
    )
    assert proc.stdout.strip() == f"InputError: {message}", proc.stderr


def test_max_input_pixels_is_the_explainers_limit(session: CamSession) -> None:
    limited = Explainer(session, ExplainConfig(max_input_pixels=63))
    with pytest.raises(InputError) as info:
        limited.explain(_image(1, 2, 3))
    assert str(info.value) == (
        "image 0 (8x8) would run at 8x8 pixels (64 pixels), above --max-pixels 63 (63 pixels): "
        "give a smaller image or --input-size, or raise --max-pixels"
    )
    assert len(Explainer(session, ExplainConfig(max_input_pixels=64)).explain(_image(1, 2, 3)))
    for bad in (0, True, 1.5):
        with pytest.raises(ConfigError, match="max_input_pixels .* must be an integer >= 1"):
            ExplainConfig(max_input_pixels=bad)  # type: ignore[arg-type]
