"""Reading an ONNX file's metadata without ONNX Runtime: the same props as a session reads, on
files with weights inside and in a side file, reading a few kilobytes of a large file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from cam_rt.runtime import CamSession
from cam_rt.runtime.backend.onnx_file import props_of, read_metadata, read_metadata_props
from cam_rt.runtime.errors import ModelLoadError
from tests.onnx_models import channel_model


def _session_props(path: Path) -> dict[str, str]:
    return dict(ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 3, "class_names": ("cat", "dog", "ünïcode ✓")},
        {"channels": 4, "kind": "features", "input_size": (32, 48), "fixed_size": True},
        {"channels": 2, "activation": "softmax", "method": "grad-cam", "stride": 8},
    ],
)
def test_same_metadata_as_a_session(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    path = channel_model(tmp_path / "m.onnx", **kwargs)
    assert read_metadata_props(path) == _session_props(path)
    meta, session = read_metadata(path), CamSession(path).metadata
    assert meta == session
    if session.cam_weights is not None:
        assert meta.cam_weights is not None
        np.testing.assert_array_equal(meta.cam_weights, session.cam_weights)


def _with_weights(path: Path, megabytes: int, external: str = "") -> Path:
    """``channel_model`` plus ``megabytes`` of weights (a third output, so a session keeps
    them), in the model file or in the side file ``external`` as ``cam-rt export`` puts them."""
    channel_model(path, channels=3, kind="features")
    model = onnx.load(str(path))
    weights = np.arange(megabytes * 2**18, dtype=np.float32)
    model.graph.initializer.append(numpy_helper.from_array(weights, "big"))
    model.graph.node.append(helper.make_node("Identity", ["big"], ["weights"]))
    model.graph.output.append(
        helper.make_tensor_value_info("weights", TensorProto.FLOAT, list(weights.shape))
    )
    if external:
        props = {p.key: p.value for p in model.metadata_props}
        helper.set_model_props(model, {**props, "cam_rt.external_data": external})
        onnx.save(model, str(path), save_as_external_data=True, location=external)
    else:
        onnx.save(model, str(path))
    return path


def test_external_data_is_never_read(tmp_path: Path) -> None:
    path = _with_weights(tmp_path / "m.onnx", 1, external="m.onnx.1a2b.data")
    assert (tmp_path / "m.onnx.1a2b.data").stat().st_size >= 2**20
    expected = _session_props(path)
    assert read_metadata_props(path) == expected
    assert read_metadata(path).external_data == "m.onnx.1a2b.data"
    (tmp_path / "m.onnx.1a2b.data").unlink()  # the reader does not need it; a session does
    assert read_metadata_props(path) == expected
    with pytest.raises(ModelLoadError):
        CamSession(path)


class _Counting(io.FileIO):
    read_bytes = 0

    def readinto(self, buffer: bytearray | memoryview) -> int | None:  # type: ignore[override]
        n = super().readinto(buffer)
        _Counting.read_bytes += n or 0
        return n


def test_the_weights_are_sought_past(tmp_path: Path) -> None:
    path = _with_weights(tmp_path / "m.onnx", 16)
    assert path.stat().st_size > 16 * 2**20
    with io.BufferedReader(_Counting(path), buffer_size=4096) as stream:
        props = props_of(stream, path.stat().st_size)
    assert props == _session_props(path)
    assert _Counting.read_bytes < 64 * 2**10  # of a 16 MiB file


def test_a_repeated_key_keeps_its_last_value() -> None:
    model = onnx.ModelProto(ir_version=8, producer_name="x")
    model.metadata_props.add(key="a", value="1")
    model.metadata_props.add(key="a", value="2")
    data = model.SerializeToString()
    assert props_of(io.BytesIO(data), len(data)) == {"a": "2"}


def test_not_an_onnx_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        read_metadata_props(tmp_path / "missing.onnx")
    (tmp_path / "text.onnx").write_text("hello, this is not a protobuf")
    with pytest.raises(ModelLoadError, match=r"text.onnx is not an ONNX model \("):
        read_metadata_props(tmp_path / "text.onnx")
    good = channel_model(tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(good[:-3])  # inside the last metadata entry
    with pytest.raises(ModelLoadError, match="runs past the end of the file"):
        read_metadata_props(tmp_path / "cut.onnx")
    (tmp_path / "plain.onnx").write_bytes(
        helper.make_model(
            helper.make_graph(
                [helper.make_node("Identity", ["x"], ["y"])],
                "g",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
            )
        ).SerializeToString()
    )
    assert read_metadata_props(tmp_path / "plain.onnx") == {}
    with pytest.raises(ModelLoadError, match="has no cam-rt metadata"):
        read_metadata(tmp_path / "plain.onnx")
