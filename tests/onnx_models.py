"""Hand-built ONNX models with known outputs (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from cam_rt.runtime.backend.session import CamSession
from cam_rt.runtime.metadata import ModelMetadata, Preprocessing


def channel_model(
    path: Path,
    channels: int = 2,
    offset: float = 0.0,
    kind: str = "cam",
    metadata: bool = True,
    stride: int = 1,
    activation: str = "sigmoid",
    class_names: tuple[str, ...] | None = None,
    maps_name: str | None = None,
    scores_name: str = "scores",
    input_size: tuple[int, int] | None = None,
    fixed_size: bool = False,
    method: str = "cam",
) -> Path:
    """maps[n, i, j, c] = images[n, i, j, c] / 255 - offset for the first ``channels`` channels.

    ``kind == "cam"``: outputs ``scores`` (spatial mean of the maps) and ``cams``.
    ``kind == "features"``: outputs ``scores`` and ``features`` (the same maps, K = channels);
    the CAM weights stored in the metadata are the identity (K = L).
    ``input_size``, ``fixed_size``, ``method`` go into the metadata; ``fixed_size`` also makes
    the graph's input height and width static (ONNX Runtime then refuses other sizes).
    """
    maps_name = maps_name or ("cams" if kind == "cam" else "features")
    dims: list[int | str] = ["height", "width"]
    if fixed_size:
        assert input_size is not None
        dims = list(input_size)
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", *dims, 3])
    out_maps = helper.make_tensor_value_info(
        maps_name, TensorProto.FLOAT, ["batch", "h", "w", channels]
    )
    out_scores = helper.make_tensor_value_info(scores_name, TensorProto.FLOAT, ["batch", channels])
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [channels]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [3]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 255]),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]),
    ]
    nodes = [
        helper.make_node("Slice", ["images", "starts", "ends", "axes"], ["sliced"]),
        helper.make_node("Mul", ["sliced", "scale"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "offset"], [maps_name]),
        helper.make_node("ReduceMean", [maps_name], [scores_name], axes=[1, 2], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "channels", [inp], [out_scores, out_maps], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        meta = channel_metadata(
            channels, kind, stride, activation, class_names, input_size, fixed_size, method
        )
        helper.set_model_props(model, meta.to_props())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def channel_metadata(
    channels: int = 2,
    kind: str = "cam",
    stride: int = 1,
    activation: str = "sigmoid",
    class_names: tuple[str, ...] | None = None,
    input_size: tuple[int, int] | None = None,
    fixed_size: bool = False,
    method: str = "cam",
) -> ModelMetadata:
    """The metadata :func:`channel_model` writes."""
    return ModelMetadata(
        output="cam" if kind == "cam" else "features",
        class_names=class_names or tuple(f"c{i}" for i in range(channels)),
        activation=activation,  # type: ignore[arg-type]
        preprocessing=Preprocessing("none"),
        output_stride=stride,
        feature_layer="channels",
        score_layer="mean",
        source_sha256="0" * 64,
        cam_weights=np.eye(channels, dtype=np.float32) if kind == "features" else None,
        input_size=input_size,
        fixed_size=fixed_size,
        method=method,  # type: ignore[arg-type]
    )


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
