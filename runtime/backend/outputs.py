"""A model's raw outputs -> checked scores and CAMs, for local and remote sessions alike.

A cam-rt model gives ``scores`` (N, L) and either ``cams`` (N, h, w, L) or ``features``
(N, h, w, K), which become CAMs with the file's CAM weights (K, L). :func:`cam_outputs` does
that weighting and checks what came back: floating-point arrays, the expected ranks and class
counts, and one row per input of the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelLoadError, ProviderError
from ..maps.cam import weight_features

__all__ = ["cam_outputs"]


def cam_outputs(
    scores: Any,
    maps: Any,
    *,
    batch: int,
    num_classes: int,
    weights: np.ndarray | None,
    source: str,
    advice: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N, L) and CAMs (N, h, w, L) as float32 from a run on a batch of ``batch`` inputs.

    ``maps`` are CAMs, or features (N, h, w, K) when ``weights`` (K, L) are given. ``source``
    names what gave the outputs (a file, "the remote model"), ``advice`` what to check. Outputs
    that do not fit the model raise ModelLoadError; a batch size other than ``batch`` (an
    engine or a server that dropped or merged inputs) raises ProviderError.
    """
    scores, maps = np.asarray(scores), np.asarray(maps)
    for name, array in (("scores", scores), ("maps", maps)):
        if not np.issubdtype(array.dtype, np.floating):
            raise ModelLoadError(
                f"{source} gave {name} of type {array.dtype}; expected floating point: {advice}"
            )
    if weights is not None:
        k = weights.shape[0]
        if maps.ndim != 4 or maps.shape[-1] != k:
            raise ModelLoadError(
                f"{source} gave features {maps.shape}; expected (N, h, w, {k}): {advice}"
            )
        maps = weight_features(maps, weights)
    n = num_classes
    if maps.ndim != 4 or scores.ndim != 2 or maps.shape[-1] != n or scores.shape[-1] != n:
        raise ModelLoadError(
            f"{source} gave scores {scores.shape} and maps {maps.shape}; expected (N, {n}) and "
            f"(N, h, w, {n}): {advice}"
        )
    if scores.shape[0] != batch or maps.shape[0] != batch:
        raise ProviderError(
            f"{source} gave {scores.shape[0]} score rows and {maps.shape[0]} maps for a batch "
            f"of {batch} input(s); expected {batch} of each: it must answer every input of a "
            "batch, in order"
        )
    return scores.astype(np.float32, copy=False), maps.astype(np.float32, copy=False)
