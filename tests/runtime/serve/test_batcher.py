"""The micro-batcher: images queued together go into one ONNX Runtime run, grouped by their
options; the queue is bounded (all or none); cancelled images are dropped; close drains."""

from __future__ import annotations

from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.batch.io import LoadedImage
from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.serve.batcher import Batcher, ExplainerSet, Job, QueueFull
from cam_rt.runtime.serve.config import RequestOptions
from tests.onnx_models import Recorder, channel_model

from .servers import picture

TTA = TTAConfig(scales=(1.0, 2.0), flip=True)


@pytest.fixture
def explainers(tmp_path: Path) -> ExplainerSet:
    model = channel_model(
        tmp_path / "m.onnx", channels=3, offset=0.4, class_names=("red", "green", "blue")
    )
    base = Explainer(CamSession(model), ExplainConfig(classes=ClassSelection("all")))
    return ExplainerSet(base, TTA, tta_default=False)


def _image(seed: int, size: tuple[int, int] = (16, 24)) -> LoadedImage:
    return LoadedImage(picture(*size, seed=seed), ())


def test_images_queued_together_share_one_run(explainers: ExplainerSet) -> None:
    recorder = Recorder(explainers.base.session)  # type: ignore[arg-type]
    key, labels = explainers.key(RequestOptions(tta=False))
    jobs = [Job(_image(i), key, labels) for i in range(4)]
    seen: list[tuple[int, float]] = []
    batcher = Batcher(explainers.get, 8, 0.0, 16, observe=lambda n, s: seen.append((n, s)))
    batcher.submit(jobs)  # queued before the worker starts: one batch
    assert batcher.depth() == 4
    with batcher:
        results = [job.future.result(30) for job in jobs]
    assert [b.shape for b in recorder.batches] == [(4, 16, 24, 3)]
    assert [n for n, _ in seen] == [4] and all(job.batch == 4 for job in jobs)
    recorder.batches.clear()
    for job, result in zip(jobs, results, strict=True):
        (alone,) = explainers.base.explain(job.image.pixels)
        np.testing.assert_array_equal(result.maps, alone.maps)
        np.testing.assert_allclose(
            result.scores, alone.scores, rtol=1e-5, atol=1e-6
        )  # batched mean


def test_groups_by_options_and_fixed_classes(explainers: ExplainerSet) -> None:
    plain, _ = explainers.key(RequestOptions(tta=False))
    tta, _ = explainers.key(RequestOptions(tta=True))
    fixed, ids = explainers.key(RequestOptions(False, ClassSelection("fixed", labels=("blue", 0))))
    assert ids == (2, 0)
    jobs = [Job(_image(0), plain), Job(_image(1), tta), Job(_image(2), fixed, ids)]
    with Batcher(explainers.get, 8, 0.0, 16) as batcher:
        batcher.submit(jobs)
        results = [job.future.result(30) for job in jobs]
    with_tta = Explainer(
        explainers.base.session, ExplainConfig(tta=TTA, classes=ClassSelection("all"))
    )
    expected = [
        explainers.base.explain(jobs[0].image.pixels)[0],
        with_tta.explain(jobs[1].image.pixels)[0],
        explainers.base.explain(jobs[2].image.pixels, labels=[[2, 0]])[0],
    ]
    for result, want in zip(results, expected, strict=True):
        assert result.class_ids == want.class_ids
        np.testing.assert_array_equal(result.maps, want.maps)
    assert results[2].class_names == ("blue", "red")


def test_unknown_class_names_list_close_ones(explainers: ExplainerSet) -> None:
    with pytest.raises(ConfigError, match=r"class 'gren' is not one of .*closest: green"):
        explainers.key(RequestOptions(False, ClassSelection("fixed", labels=("gren",))))


def test_the_queue_takes_all_or_none(explainers: ExplainerSet) -> None:
    key, _ = explainers.key(RequestOptions(tta=False))
    batcher = Batcher(explainers.get, 8, 0.0, 3)
    batcher.submit([Job(_image(0), key), Job(_image(1), key)])
    with pytest.raises(QueueFull, match=r"the queue is full \(2 of 3 images wait\)"):
        batcher.submit([Job(_image(2), key), Job(_image(3), key)])
    assert batcher.depth() == 2
    batcher.submit([Job(_image(2), key)])
    batcher.start().close(30)
    assert batcher.depth() == 0 and not batcher.alive()
    with pytest.raises(QueueFull, match="shutting down"):
        batcher.submit([Job(_image(4), key)])


def test_cancelled_images_are_dropped_unrun(explainers: ExplainerSet) -> None:
    recorder = Recorder(explainers.base.session)  # type: ignore[arg-type]
    key, _ = explainers.key(RequestOptions(tta=False))
    jobs = [Job(_image(i), key) for i in range(3)]
    batcher = Batcher(explainers.get, 8, 0.0, 8)
    batcher.submit(jobs)
    assert jobs[1].future.cancel()
    with batcher:
        jobs[0].future.result(30)
        jobs[2].future.result(30)
    with pytest.raises(CancelledError):
        jobs[1].future.result(0)
    assert [b.shape[0] for b in recorder.batches] == [2]


def test_a_failing_image_fails_alone(explainers: ExplainerSet) -> None:
    key, _ = explainers.key(RequestOptions(tta=False))
    broken = LoadedImage(np.zeros((0, 5, 3), np.uint8), ())
    jobs = [Job(_image(0), key), Job(broken, key), Job(_image(1), key)]
    with Batcher(explainers.get, 8, 0.0, 8) as batcher:
        batcher.submit(jobs)
        assert jobs[0].future.result(30).maps.shape == (16, 24, 3)
        with pytest.raises(Exception, match="image"):
            jobs[1].future.result(30)
        assert jobs[2].future.result(30).maps.shape == (16, 24, 3)
