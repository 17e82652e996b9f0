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
    with pytest.raises(InputError, match="repeats cat"):
        resolve_class_names(str(dupes))
