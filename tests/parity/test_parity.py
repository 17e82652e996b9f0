"""Runtime vs the TensorFlow reference of keras-explainable (vanilla CAM and TTA) on tiny models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from cam_rt.export import ExportConfig, export_model  # noqa: E402
from tests import ke_reference as ke  # noqa: E402

SIZES = [(37, 53), (61, 45), (50, 50)]
SCALES = (0.5, 1.0, 1.5, 2.0)


def _images(size: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth-ish content so maps have structure: low-res noise upsampled, plus noise.
    base = rng.uniform(0, 255, (size[0] // 4 + 1, size[1] // 4 + 1, 3)).astype(np.float32)
    up = tf.image.resize(base[None], size, method="bilinear")[0].numpy()
    return np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=["conv_head", "gap_dense"])
def case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    model = request.getfixturevalue(f"{request.param}_model")
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "conv_head":
        exposed = keras.Model(
            model.inputs[0],
            [model.get_layer("avg_pool").output, model.get_layer("features").output],
        )
        weights = model.get_layer("logits").get_weights()[0][0, 0]
    else:
        exposed = keras.Model(
            model.inputs[0], [model.get_layer("head").output, model.get_layer("conv2").output]
        )
        weights = model.get_layer("head").get_weights()[0]
    files = {}
    for kind in ("cam", "features"):
        files[kind] = folder / f"{kind}.onnx"
        export_model(model, files[kind], ExportConfig(output=kind))
    return {"name": request.param, "exposed": exposed, "weights": weights, "files": files}


def _all(session: CamSession, tta: TTAConfig | None) -> Explainer:
    return Explainer(session, ExplainConfig(tta=tta, classes=ClassSelection("all")))


@pytest.mark.parametrize("kind", ["cam", "features"])
def test_vanilla_cam_matches_reference(case: dict[str, Any], kind: str) -> None:
    explainer = _all(CamSession(case["files"][kind]), None)
    for seed, size in enumerate(SIZES):
        image = _images(size, seed)
        (result,) = explainer.explain(image)
        n = result.maps.shape[-1]
        ref = ke.explain_cam(
            case["exposed"], case["weights"], image[None].astype(np.float32), np.arange(n)[None]
        )
        assert result.maps.shape == (*size, n)
        np.testing.assert_allclose(result.maps, ref.numpy()[0], atol=1e-4, rtol=0)
        assert result.maps.min() >= 0 and result.maps.max() <= 1


@pytest.mark.parametrize("kind", ["cam", "features"])
def test_keras_explainable_tta_matches_reference(case: dict[str, Any], kind: str) -> None:
    tta = TTAConfig(scales=SCALES, flip=True, mode="keras-explainable")
    explainer = _all(CamSession(case["files"][kind]), tta)
    images = [_images(size, 10 + seed) for seed, size in enumerate(SIZES)]
    results = explainer.explain(images)  # mixed sizes in one call
    for image, result in zip(images, results, strict=True):
        n = result.maps.shape[-1]
        scores, ref = ke.tta(
            case["exposed"],
            case["weights"],
            image[None].astype(np.float32),
            np.arange(n)[None],
            SCALES,
            hflip=True,
        )
        np.testing.assert_allclose(result.maps, ref.numpy()[0], atol=1e-4, rtol=0)
        if case["name"] == "conv_head":  # its reference scores are the pre-activation ones
            np.testing.assert_allclose(result.scores, scores.numpy()[0], rtol=1e-5, atol=1e-5)


def test_keras_explainable_float32_sizes(case: dict[str, Any]) -> None:
    """Scale 0.7 on 90 px: float32 gives 63 px, float64 would give 62."""
    scales = (0.7, 1.3)
    tta = TTAConfig(scales=scales, flip=False, mode="keras-explainable")
    image = _images((90, 90), 21)
    (result,) = _all(CamSession(case["files"]["cam"]), tta).explain(image)
    n = result.maps.shape[-1]
    _, ref = ke.tta(
        case["exposed"],
        case["weights"],
        image[None].astype(np.float32),
        np.arange(n)[None],
        scales,
        hflip=False,
    )
    np.testing.assert_allclose(result.maps, ref.numpy()[0], atol=1e-4, rtol=0)


def test_cam_and_features_files_agree(case: dict[str, Any]) -> None:
    tta = TTAConfig(scales=(0.5, 1.0, 2.0), flip=True, mode="mean")
    a = _all(CamSession(case["files"]["cam"]), tta)
    b = _all(CamSession(case["files"]["features"]), tta)
    image = _images((45, 71), 3)
    (ra,), (rb,) = a.explain(image), b.explain(image)
    np.testing.assert_allclose(ra.maps, rb.maps, atol=1e-5)
    np.testing.assert_allclose(ra.scores, rb.scores, rtol=1e-5, atol=1e-6)
