"""The decode and explain steps on a real ONNX Runtime session (a tiny model with known maps):
a batch at once, and a bad image failing alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer
from cam_rt.runtime.batch.io import LoadedImage
from cam_rt.runtime.batch.steps import decode, explain_images, failure
from cam_rt.runtime.errors import ConfigError, InputError
from tests.onnx_models import Recorder, channel_model


@pytest.fixture(scope="module")
def explainer(tmp_path_factory: pytest.TempPathFactory) -> Explainer:
    path = channel_model(
        tmp_path_factory.mktemp("m") / "m.onnx", channels=3, class_names=("r", "g", "b")
    )
    return Explainer(CamSession(path), ExplainConfig(classes=ClassSelection("all")))


def _image(value: int, size: tuple[int, int] = (6, 8)) -> LoadedImage:
    pixels = np.zeros((*size, 3), np.uint8)
    pixels[..., 0] = value
    return LoadedImage(pixels, ())


def test_decode_reads_the_file_and_times_it(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    loaded, seconds = decode(tmp_path / "x.png", 10**6)
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert seconds > 0
    with pytest.raises(InputError, match="above --max-pixels"):
        decode(tmp_path / "x.png", 34)


def test_a_batch_is_explained_in_one_call(explainer: Explainer) -> None:
    images = [_image(255), _image(51, (4, 4))]
    recorder = Recorder(explainer.session)  # type: ignore[arg-type]
    try:
        results, seconds = explain_images(explainer, images, [None, None])
    finally:
        del explainer.session.run  # type: ignore[method-assign]
    assert len(recorder.batches) == 2 and seconds > 0  # two sizes: two runs, one call
    first, second = results
    assert not isinstance(first, Exception) and not isinstance(second, Exception)
    # scores = the mean of pixel / 255 per channel: red only
    np.testing.assert_allclose(first.scores, [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(second.scores, [0.2, 0, 0], atol=1e-6)
    assert first.maps.shape == (6, 8, 3) and second.maps.shape == (4, 4, 3)
    alone = explainer.explain(images[1].pixels)[0]
    np.testing.assert_array_equal(second.maps, alone.maps)


def test_a_bad_image_fails_alone(explainer: Explainer) -> None:
    rgba = LoadedImage(np.zeros((4, 4, 4), np.uint8), ())
    results, _ = explain_images(explainer, [_image(255), rgba, _image(10)], [None, None, None])
    assert isinstance(results[1], InputError) and "4 channels" in str(results[1])
    assert all(isinstance(r, Exception) is (i == 1) for i, r in enumerate(results))
    alone, _ = explain_images(explainer, [rgba], [None])
    assert isinstance(alone[0], InputError)


def test_labels_choose_the_classes(explainer: Explainer) -> None:
    results, _ = explain_images(explainer, [_image(255), _image(9)], [["g"], [2, "r"]])
    assert [r.class_ids for r in results if not isinstance(r, Exception)] == [(1,), (2, 0)]
    bad, _ = explain_images(explainer, [_image(255), _image(9)], [["g"], ["purple"]])
    assert not isinstance(bad[0], Exception) and isinstance(bad[1], ConfigError)
    assert explain_images(explainer, [], []) == ([], 0.0)


def test_failure_advises_on_memory() -> None:
    assert "lower --batch-size or --max-pixels" in str(failure(MemoryError()))
    error = InputError("x")
    assert failure(error) is error
