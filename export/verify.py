"""Check an exported file against the Keras model before it becomes final."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cam_rt.runtime.errors import ExportError

from ._deps import import_optional

__all__ = ["ABS_FLOOR", "Parity", "check_parity", "compare"]

#: Absolute errors at or below this pass whatever the reference's range.
ABS_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class Parity:
    """ONNX Runtime vs Keras on one output at one input size.

    ``rel_error`` is ``max_abs_error`` divided by the reference's range (max - min), or by 1
    when the reference is constant.
    """

    output: str
    batch: int
    height: int
    width: int
    max_abs_error: float
    mean_abs_error: float
    rel_error: float
    reference_range: float

    def line(self) -> str:
        return (
            f"{self.output:>8} {self.batch}x{self.height}x{self.width}: max abs "
            f"{self.max_abs_error:.3g}, mean abs {self.mean_abs_error:.3g}, relative "
            f"{self.rel_error:.3g} (reference range {self.reference_range:.3g})"
        )


def compare(
    output: str,
    shape: tuple[int, int, int],
    got: np.ndarray,
    ref: np.ndarray,
    span: float | None = None,
) -> Parity:
    """Errors of ``got`` vs ``ref``; the relative error divides by ``span`` (default: the
    reference's range)."""
    if got.shape != ref.shape:
        raise ExportError(
            f"ONNX output '{output}' has shape {got.shape} but Keras gives {ref.shape} at input "
            f"{shape[1]}x{shape[2]}"
        )
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    if span is None:
        span = float(ref.max() - ref.min()) if ref.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    return Parity(
        output=output,
        batch=shape[0],
        height=shape[1],
        width=shape[2],
        max_abs_error=max_abs,
        mean_abs_error=float(diff.mean()) if diff.size else 0.0,
        rel_error=max_abs / span if span > 0 else max_abs,
        reference_range=span,
    )


def check_parity(
    onnx_path: Path,
    reference: Callable[[np.ndarray], dict[str, np.ndarray]],
    sizes: Sequence[tuple[int, int]],
    tolerance: float,
    derive: Mapping[
        str, Callable[[dict[str, np.ndarray], np.ndarray], tuple[np.ndarray, np.ndarray, float]]
    ]
    | None = None,
    seed: int = 0,
    against: str = "Keras",
) -> list[Parity]:
    """Run ``onnx_path`` and ``reference`` on random 0..255 images at each (H, W).

    The first size runs with batch 1, the others with batch 2 (so the batch dim is exercised).
    Every output of the file is compared with ``reference``'s value of that name; each extra
    name of ``reference`` (e.g. ``keras``: the model's own output) is compared as
    ``derive[name](file outputs, reference value) -> (file side, reference side, range)``.
    Returns the parity rows. Raises ExportError when a relative error exceeds ``tolerance``
    (and its max abs error exceeds ``ABS_FLOOR``).
    """
    ort = import_optional("onnxruntime", "onnxruntime", "checking the export", extra="cpu")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(seed)
    rows: list[Parity] = []
    for index, (height, width) in enumerate(sizes):
        batch = 1 if index == 0 else 2
        images = rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
        got = dict(zip(names, session.run(names, {"images": images}), strict=True))
        ref = reference(images)
        for name in names:
            rows.append(compare(name, (batch, height, width), got[name], ref[name]))
        for name, fn in (derive or {}).items():
            if name in ref:
                mine, theirs, span = fn(got, ref[name])
                rows.append(compare(name, (batch, height, width), mine, theirs, span))
    del session
    # Errors within float32 noise of values near zero (max abs <= ABS_FLOOR) always pass:
    # a map that cancels to ~0 has a tiny range, so its relative error means nothing.
    worst = max(rows, key=lambda r: r.rel_error if r.max_abs_error > ABS_FLOOR else 0.0)
    if not (worst.rel_error <= tolerance or worst.max_abs_error <= ABS_FLOOR):  # NaN fails
        raise ExportError(
            f"the ONNX model does not match {against}: output '{worst.output}' at "
            f"{worst.height}x{worst.width} has relative error {worst.rel_error:.3g} (max abs "
            f"{worst.max_abs_error:.3g}) above the tolerance {tolerance:g}; no file was written"
        )
    return rows
