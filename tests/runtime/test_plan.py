"""Shape planning: size buckets, the batches a TTA plan runs, TensorRT profiles and warm-up shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ExplainConfig,
    Explainer,
    TTAConfig,
)
from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.maps.tta import Pass, bucket_size, input_size
from cam_rt.runtime.plan import (
    batch_shapes,
    image_chunks,
    run_groups,
    shape_profile,
    warmup_shapes,
)
from tests.onnx_models import Recorder, channel_model

TTA = TTAConfig((0.5, 1.0, 1.5, 2.0), True, "mean")


def test_bucket_arithmetic() -> None:
    assert bucket_size(100, 47, 32) == (96, 32)  # nearest multiple; 47 -> 32 (1.47 buckets)
    assert bucket_size(112, 10, 32) == (128, 32)  # halves round up; never below one bucket
    assert bucket_size(100, 47, 0) == (100, 47)
    assert input_size(97, 131, 1.5, "mean", 32) == (160, 192)  # 146 -> 160, 196 -> 192
    with pytest.raises(ConfigError, match="bucket -8"):
        bucket_size(10, 10, -8)
    with pytest.raises(ConfigError, match="bucket -8"):
        ExplainConfig(bucket=-8)


def test_batch_shapes_follow_the_explainer_batching() -> None:
    batched = ExplainConfig(tta=TTA, batch_size=8, batch_flips=True)
    assert batch_shapes(batched, 100, 60) == [
        (2, 50, 30),
        (2, 100, 60),
        (2, 150, 90),
        (2, 200, 120),
    ]
    # 5 images of one size, batch 8: 4 images (8 inputs) per run, then 1 image.
    assert batch_shapes(batched, 100, 60, images=5)[:2] == [(8, 50, 30), (2, 50, 30)]
    single = ExplainConfig(tta=TTA, batch_size=1, batch_flips=False)
    assert batch_shapes(single, 100, 60) == [
        (1, 50, 30),
        (1, 50, 30),
        (1, 100, 60),
        (1, 100, 60),
        (1, 150, 90),
        (1, 150, 90),
        (1, 200, 120),
        (1, 200, 120),
    ]
    assert batch_shapes(ExplainConfig(bucket=32), 100, 60, images=3) == [(3, 96, 64)]


def test_run_groups_and_image_chunks() -> None:
    passes = [Pass(1.0, False), Pass(1.0, True), Pass(2.0, False), Pass(2.0, True)]
    assert run_groups(passes, True) == [passes[:2], passes[2:]]
    assert run_groups(passes, False) == [[p] for p in passes]
    assert image_chunks(range(5), 8, 2) == [range(0, 4), range(4, 5)]
    assert image_chunks([0, 1, 2], 1, 2) == [[0], [1], [2]]  # one image a run, never none


@pytest.mark.parametrize("flips", [True, False])
def test_the_explainer_runs_the_planned_shapes(tmp_path: Path, flips: bool) -> None:
    """What :func:`batch_shapes` plans is what a real session is fed, run by run."""
    session = CamSession(channel_model(tmp_path / "m.onnx", channels=2))
    recorder = Recorder(session)
    config = ExplainConfig(tta=TTA, batch_size=4, batch_flips=flips, bucket=16)
    images = [np.full((41, 70, 3), 9 * i, np.uint8) for i in range(3)]
    Explainer(session, config).explain(images)
    ran = [(b.shape[0], b.shape[1], b.shape[2]) for b in recorder.batches]
    assert ran == batch_shapes(config, 41, 70, images=3)
    # Scale 0.5: 20x35 bucketed to 16x32; two images and their flips, or three images alone.
    assert ran[0] == ((4, 16, 32) if flips else (3, 16, 32))


def test_shape_profile_from_tta_plan_covers_every_run() -> None:
    config = ExplainConfig(tta=TTA, batch_size=4, batch_flips=True, bucket=32)
    profile = shape_profile(config, 64, 512)
    assert profile.min == (2, 32, 32)  # scale 0.5 of a 64 px side, one image and its flip
    assert profile.max == (4, 1024, 1024)  # scale 2 of 512 px, two images and their flips
    assert profile.opt == (2, 512, 512)
    rng = np.random.default_rng(0)
    for _ in range(200):  # every run of every image size in the range stays inside
        h, w = (int(v) for v in rng.integers(64, 513, 2))
        for n, sh, sw in batch_shapes(config, h, w, int(rng.integers(1, 6))):
            assert profile.contains(n, sh, sw), (h, w, n, sh, sw)
    with pytest.raises(ConfigError, match="not a range"):
        shape_profile(config, 512, 64)


def test_bucketed_maps_stay_at_image_size_and_close_to_exact(tmp_path: Path) -> None:
    """A smooth model: bucketing changes each pass's size by < half a bucket per side."""
    session = CamSession(channel_model(tmp_path / "m.onnx", channels=3))
    yy, xx = np.mgrid[0:101, 0:77]
    image = np.stack([xx * 3.0, yy * 2.0, (xx + yy) * 1.5], -1).clip(0, 255).astype(np.uint8)
    exact = Explainer(session, ExplainConfig(tta=TTA, classes=ClassSelection("all")))
    bucketed = Explainer(session, ExplainConfig(tta=TTA, classes=ClassSelection("all"), bucket=16))
    (a,), (b,) = exact.explain(image), bucketed.explain(image)
    assert a.maps.shape == b.maps.shape == (101, 77, 3)
    assert float(np.abs(a.maps - b.maps).max()) < 0.05


def test_warmup_shapes() -> None:
    config = ExplainConfig(
        tta=TTAConfig((1.0, 2.0), True), batch_size=2, batch_flips=True, bucket=32
    )
    shapes = warmup_shapes(config, sizes=[(100, 60)])
    assert shapes == [(2, 96, 64), (2, 192, 128)]  # 1 image and a full batch are both 2 inputs
    ranged = warmup_shapes(config, min_side=64, max_side=128)
    # Sides 64..128 at scale 1 bucket to 64, 96 or 128 and at scale 2 to 128..256: 3 and 5
    # sizes per side, 9 + 25 shapes, one of them (128x128) in both, all with batch 2.
    assert len(ranged) == 9 + 25 - 1 and {n for n, _, _ in ranged} == {2}
    with pytest.raises(ConfigError, match="needs --bucket"):
        warmup_shapes(ExplainConfig(), min_side=64, max_side=128)


def test_warmup_refuses_inputs_above_max_pixels() -> None:
    """Warm-up runs its shapes: one above --max-pixels is refused when planned, not allocated."""
    config = ExplainConfig(tta=TTAConfig((1.0, 30.0), False), max_input_pixels=10**8)
    with pytest.raises(ConfigError) as info:
        warmup_shapes(config, sizes=[(100, 60), (1536, 2048)])
    assert str(info.value) == (
        "warm-up size (1536x2048) at TTA scale 30 would run at 46080x61440 pixels (2,831 MP), "
        "above --max-pixels 100000000 (100 MP): lower --scales or raise --max-pixels"
    )
    assert warmup_shapes(config, sizes=[(100, 60)]) == [
        (1, 100, 60),
        (8, 100, 60),
        (1, 3000, 1800),
        (8, 3000, 1800),
    ]
