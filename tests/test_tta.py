"""TTA plans, known answers of the three modes, and how passes are batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from cam_rt.runtime.tta import input_size, resize_input

from .onnx_models import channel_model


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


class Recorder:
    """Wraps CamSession.run and keeps every batch it was given."""

    def __init__(self, session: CamSession) -> None:
        self.batches: list[np.ndarray] = []
        self._run = session.run
        session.run = self  # type: ignore[method-assign]

    def __call__(
        self, batch: np.ndarray, timings: dict[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        self.batches.append(batch.copy())
        return self._run(batch, timings)


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
