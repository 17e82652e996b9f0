"""Edge cases: class counts, float32 sizes, loose config types, colour shapes, seeds labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ConfigError,
    ExplainConfig,
    Explainer,
    InputError,
    ModelLoadError,
    PlainModel,
    SessionConfig,
    TTAConfig,
    blend,
    grid,
    heatmap_overlay,
    resolve_providers,
    seeds,
)
from cam_rt.runtime.tta import input_size

from .onnx_models import channel_model


def test_class_names_must_match_the_model(tmp_path: Path) -> None:
    path = channel_model(tmp_path / "m.onnx", channels=3, class_names=("a", "b"))
    with pytest.raises(ModelLoadError, match="the scores have 3 classes but 2 class names"):
        CamSession(path)
    plain = channel_model(tmp_path / "p.onnx", channels=3, metadata=False)
    with pytest.raises(ModelLoadError, match="3 classes but 2 class names"):
        CamSession(plain, plain=PlainModel("scores", "cams", "cams", class_names=("a", "b")))


def test_plain_model_checks_and_stride(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="maps_kind 'cam' is unknown"):
        PlainModel("s", "m", "cam")  # type: ignore[arg-type]
    plain = channel_model(tmp_path / "p.onnx", channels=2, metadata=False)
    session = CamSession(plain, plain=PlainModel("scores", "cams", "cams"))
    assert session.output_stride == 1  # measured when opening, not on the first call
    with pytest.raises(ModelLoadError, match="has 2 channels but the CAM weights expect 3"):
        CamSession(
            plain, plain=PlainModel("scores", "cams", "features", np.ones((3, 2), np.float32))
        )


def test_keras_explainable_sizes_are_float32() -> None:
    # tf.cast(float32(0.7) * float32(90), int32) == 63 (checked in TF); float64 0.7 * 90 gives 62
    assert input_size(90, 90, 0.7, "keras-explainable") == (63, 63)


def test_loose_config_types() -> None:
    assert TTAConfig(scales=np.array([0.5, 1])).scales == (0.5, 1.0)
    assert TTAConfig(scales=(np.float32(0.5),)).scales == (0.5,)
    with pytest.raises(ConfigError, match="must be a sequence"):
        TTAConfig(scales=0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scale True is invalid"):
        TTAConfig(scales=(True,))
    assert SessionConfig(providers="cuda,cpu").providers == ("cuda", "cpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="intra_op_threads '2'"):
        SessionConfig(intra_op_threads="2")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size '8'"):
        ExplainConfig(batch_size="8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="threshold '0.5'"):
        ClassSelection(threshold="0.5")  # type: ignore[arg-type]
    cpu = ["CPUExecutionProvider"]
    assert resolve_providers(("auto", "cpu"), cpu) == cpu
    assert resolve_providers("auto", ["CUDAExecutionProvider", *cpu]) == [
        "CUDAExecutionProvider",
        *cpu,
    ]
    options = SessionConfig(provider_options=(("cuda", {"device_id": 1}),)).provider_options
    assert options == (("CUDAExecutionProvider", {"device_id": 1}),)


def test_labels_must_be_one_list_per_image(tmp_path: Path) -> None:
    explainer = Explainer(CamSession(channel_model(tmp_path / "m.onnx")))
    with pytest.raises(InputError, match="one list per image"):
        explainer.explain(np.zeros((8, 8, 3), np.uint8), labels=["c0"])
    with pytest.raises(InputError, match="images is a NoneType"):
        explainer.explain(None)  # type: ignore[arg-type]


def test_colour_shape_errors() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(InputError, match="differ in size"):
        heatmap_overlay(image, np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match=r"expected RGB \(H, W, 3\)"):
        blend(np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match=r"expected RGB \(H, W, 3\)"):
        grid([np.zeros((4, 4, 4), np.uint8)])


def test_seed_labels_avoid_void() -> None:
    maps = np.ones((2, 2, 1), np.float32)
    assert seeds(maps, [253], 0.1).dtype == np.uint8  # label 254
    out = seeds(maps, [254], 0.1)  # label 255 would be VOC's "void"
    assert out.dtype == np.uint16 and int(out[0, 0]) == 255
    with pytest.raises(InputError, match="class ids must be >= 0"):
        seeds(maps, [-1], 0.1)
