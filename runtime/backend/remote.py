"""A session whose model runs elsewhere (a Triton server, a Ray actor): the same TTA,
normalization and class selection as a local :class:`CamSession`, around a remote call.

``Explainer`` needs only what :class:`SessionLike` lists; :class:`RemoteSession` provides it
from the model's cam-rt metadata (written beside a Triton model by ``cam-rt triton``) and an
``infer`` function that sends a float32 (N, H, W, 3) batch and returns the model's two outputs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import CamRtError, InputError, ModelLoadError, ProviderError
from ..metadata import ModelMetadata
from .outputs import cam_outputs

__all__ = ["RemoteSession", "SessionLike", "read_metadata_file"]

Infer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@runtime_checkable
class SessionLike(Protocol):
    """What :class:`~cam_rt.runtime.Explainer` uses of a session."""

    @property
    def metadata(self) -> ModelMetadata: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def output_stride(self) -> int: ...

    @property
    def on_gpu(self) -> bool: ...

    def run(
        self, batch: np.ndarray, timings: MutableMapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


def read_metadata_file(path: str | Path) -> ModelMetadata:
    """The cam-rt metadata of a model from a JSON file of its ``metadata_props``."""
    path = Path(path)
    try:
        props = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot read model metadata {path} ({exc}): use the cam_rt_metadata.json that "
            "'cam-rt triton' wrote beside the model"
        ) from exc
    if not isinstance(props, Mapping):
        raise ModelLoadError(f"{path} holds no metadata object: regenerate it with cam-rt triton")
    return ModelMetadata.from_props({str(k): str(v) for k, v in props.items()}, where=str(path))


class RemoteSession:
    """A :class:`SessionLike` over ``infer(batch) -> (scores, maps_or_features)``.

    ``on_gpu``: whether the remote runs on a GPU (then TTA flip twins go in one request).
    """

    def __init__(self, infer: Infer, metadata: ModelMetadata, on_gpu: bool = False) -> None:
        self._infer = infer
        self._metadata = metadata
        self._on_gpu = on_gpu
        if metadata.output == "features" and metadata.cam_weights is None:
            raise ModelLoadError("a 'features' model needs its CAM weights in the metadata")

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._metadata.class_names

    @property
    def output_stride(self) -> int:
        return self._metadata.output_stride

    @property
    def on_gpu(self) -> bool:
        return self._on_gpu

    def run(
        self, batch: np.ndarray, timings: MutableMapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (N, L) and CAMs (N, h, w, L), like :meth:`CamSession.run`."""
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise InputError(f"batch has shape {batch.shape}; expected (N, H, W, 3)")
        start = time.perf_counter()
        try:
            scores, maps = self._infer(np.ascontiguousarray(batch, dtype=np.float32))
        except CamRtError:
            raise
        except Exception as exc:  # the transport's own errors (HTTP, gRPC, Ray)
            raise ProviderError(
                f"the remote model call failed on a batch of shape {batch.shape}: {exc}"
            ) from exc
        ran = time.perf_counter()
        out = cam_outputs(
            scores,
            maps,
            batch=batch.shape[0],
            num_classes=self._metadata.num_classes,
            weights=self._metadata.cam_weights if self._metadata.output == "features" else None,
            source="the remote model",
            advice="is it the model the metadata file describes?",
        )
        if timings is not None:
            timings["remote"] = timings.get("remote", 0.0) + ran - start
            timings["cam_weighting"] = timings.get("cam_weighting", 0.0) + (
                time.perf_counter() - ran
            )
        return out
