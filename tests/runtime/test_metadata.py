"""The metadata contract between export and runtime."""

from __future__ import annotations

import numpy as np
import pytest

from cam_rt.runtime import VOC_CLASSES, resolve_class_names
from cam_rt.runtime.errors import ConfigError, InputError, ModelLoadError
from cam_rt.runtime.metadata import FORMAT_VERSION, ModelMetadata, Preprocessing


def _meta(**kw: object) -> ModelMetadata:
    base: dict[str, object] = {
        "output": "features",
        "class_names": ("a", "b"),
        "activation": "sigmoid",
        "preprocessing": Preprocessing(
            "torch", 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        ),
        "output_stride": 8,
        "feature_layer": "s5_ac",
        "score_layer": "avg_pool",
        "source_sha256": "ab" * 32,
        "cam_weights": np.arange(6, dtype=np.float32).reshape(3, 2),
        "producer": {"cam_rt": "0.1.0"},
    }
    base.update(kw)
    return ModelMetadata(**base)  # type: ignore[arg-type]


def test_round_trip() -> None:
    meta = _meta()
    props = meta.to_props()
    assert all(k.startswith("cam_rt.") for k in props)
    assert props["cam_rt.format_version"] == str(FORMAT_VERSION)
    back = ModelMetadata.from_props(props)
    assert back == meta
    assert back.cam_weights is not None
    np.testing.assert_array_equal(back.cam_weights, np.arange(6).reshape(3, 2))
    assert back.num_classes == 2


def test_no_metadata() -> None:
    with pytest.raises(ModelLoadError, match="has no cam-rt metadata"):
        ModelMetadata.from_props({"other": "x"}, where="plain.onnx")


def test_broken_and_newer_metadata() -> None:
    props = _meta().to_props()
    del props["cam_rt.activation"]
    with pytest.raises(ModelLoadError, match="broken cam-rt metadata.*activation"):
        ModelMetadata.from_props(props)
    props = _meta().to_props()
    props["cam_rt.format_version"] = str(FORMAT_VERSION + 1)
    with pytest.raises(ModelLoadError, match="newer cam-rt.*upgrade"):
        ModelMetadata.from_props(props)
    props = _meta().to_props()
    props["cam_rt.output"] = "maps"
    with pytest.raises(ModelLoadError, match="output 'maps' is not one of"):
        ModelMetadata.from_props(props)


def test_class_names(tmp_path: pytest.TempPathFactory) -> None:
    assert resolve_class_names("VOC") == VOC_CLASSES
    assert (
        len(VOC_CLASSES) == 20 and VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[-1] == "tvmonitor"
    )
    with pytest.raises(ConfigError, match="neither a known list"):
        resolve_class_names("coco-missing.txt")


def test_class_file_errors(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    empty = folder / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="has no names"):
        resolve_class_names(str(empty))
    dupes = folder / "dupes.txt"
    dupes.write_text("cat\ndog\ncat\n")
    assert resolve_class_names(str(dupes)) == ("cat", "dog", "cat")  # kept as given


def test_input_size_fixed_size_and_method_round_trip() -> None:
    meta = _meta(input_size=(224, 320), fixed_size=True, method="grad-cam")
    props = meta.to_props()
    assert props["cam_rt.input_size"] == "224x320"
    assert props["cam_rt.fixed_size"] == "true"
    assert props["cam_rt.method"] == "grad-cam"
    back = ModelMetadata.from_props(props)
    assert (back.input_size, back.fixed_size, back.method) == ((224, 320), True, "grad-cam")
    assert back == meta
    dynamic = _meta(input_size=[96, 128]).to_props()  # a list is stored as a tuple
    assert dynamic["cam_rt.input_size"] == "96x128" and dynamic["cam_rt.fixed_size"] == "false"
    assert ModelMetadata.from_props(dynamic).input_size == (96, 128)


def test_older_files_read_as_the_defaults() -> None:
    props = _meta().to_props()
    assert "cam_rt.input_size" not in props  # absent when None
    for key in ("cam_rt.input_size", "cam_rt.fixed_size", "cam_rt.method"):
        props.pop(key, None)
    back = ModelMetadata.from_props(props)
    assert (back.input_size, back.fixed_size, back.method) == (None, False, "cam")
    assert back.format_version == FORMAT_VERSION == 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("method", "gradcam", r"method 'gradcam' is not one of \('cam', 'grad-cam'\)"),
        ("input_size", "224", "input_size '224' is not HxW"),
        ("input_size", "0x224", "input_size '0x224' is not HxW"),
        ("fixed_size", '"yes"', "fixed_size '\"yes\"' is not true or false"),
        ("fixed_size", "true", "fixed_size is True but input_size is None"),
    ],
)
def test_bad_input_size_fixed_size_and_method(key: str, value: str, message: str) -> None:
    props = _meta().to_props()
    props[f"cam_rt.{key}"] = value
    with pytest.raises(ModelLoadError, match=f"m.onnx has broken cam-rt metadata.*{message}"):
        ModelMetadata.from_props(props, where="m.onnx")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fixed_size": True}, "fixed_size is True but input_size is None"),
        ({"input_size": (224,)}, r"input_size \(224,\) must be \(height, width\)"),
        ({"input_size": (0, 5)}, r"input_size \(0, 5\) must be"),
        ({"fixed_size": 1, "input_size": (4, 4)}, "fixed_size 1 must be True or False"),
        ({"method": "lrp"}, "method 'lrp' is unknown"),
    ],
)
def test_metadata_fields_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _meta(**kwargs)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("classes", "[1, 2]", r"cam_rt.classes '\[1, 2\]' is not a JSON list of class names"),
        ("classes", '{"a": 1, "b": 2}', "cam_rt.classes .* is not a JSON list of class names"),
        ("classes", "null", "cam_rt.classes 'null' is not a JSON list of class names"),
        ("classes", '["a", "b"', r"cam_rt.classes '\[\"a\", \"b\"' is not JSON"),
        ("classes", "[]", "cam_rt.classes '\\[\\]' is not a JSON list of class names"),
        ("activation", "relu", r"cam_rt.activation 'relu' is not one of \('sigmoid', 'softmax'\)"),
        ("input_size", "big", "cam_rt.input_size 'big' is not HxW"),
        ("output_stride", "eight", "cam_rt.output_stride 'eight' is not an integer"),
        ("output_stride", "-8", "cam_rt.output_stride '-8' is not an integer >= 0"),
        ("format_version", "one", "cam_rt.format_version 'one' is not an integer"),
        ("fp16", '"no"', "cam_rt.fp16 '\"no\"' is not true or false"),
        ("producer", "[1]", r"cam_rt.producer '\[1\]' is not a JSON object of strings"),
        ("preprocess", "[]", r"cam_rt.preprocess '\[\]' is not"),
        ("preprocess", '{"mode": "caffe"}', "cam_rt.preprocess .* is not"),
        ("cam_weights", "not base64!", "cam_rt.cam_weights is not a base64 .npy array"),
    ],
)
def test_malformed_values_are_one_line_load_errors(key: str, value: str, message: str) -> None:
    """A bad value in a file's metadata: a one-line ModelLoadError naming the key, no
    traceback (numbers, dicts or null as class names were taken, or failed later)."""
    props = _meta().to_props()
    props[f"cam_rt.{key}"] = value
    with pytest.raises(ModelLoadError, match=f"^m.onnx has broken cam-rt metadata: {message}"):
        ModelMetadata.from_props(props, where="m.onnx")
    try:
        ModelMetadata.from_props(props, where="m.onnx")
    except ModelLoadError as exc:
        text = str(exc)
    assert "\n" not in text and text.endswith(": export the model again with 'cam-rt export'")


def test_preprocessing_channel_order_and_weights_shape_are_checked() -> None:
    props = _meta().to_props()
    bad = Preprocessing("torch", channel_order="GBR")  # type: ignore[arg-type]
    props["cam_rt.preprocess"] = bad.to_json()
    with pytest.raises(ModelLoadError, match="cam_rt.preprocess .* is not"):
        ModelMetadata.from_props(props, where="m.onnx")
    props = _meta(cam_weights=np.zeros(3, np.float32)).to_props()
    with pytest.raises(ModelLoadError, match=r"cam_rt.cam_weights has shape \(3,\); expected"):
        ModelMetadata.from_props(props, where="m.onnx")
