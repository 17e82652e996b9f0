"""Runs tied to the input shape: IO-bound runs, sessions compiled per shape, CUDA graphs.

- :func:`run_bound`: one run through ONNX Runtime's IO binding, outputs kept on the device
  until read back.
- :class:`StaticSessions`: one session compiled per input shape (OpenVINO with size buckets),
  the least recently used closed past a limit.
- :class:`CudaGraphs`: one captured CUDA graph per input shape, replayed.

All of it works on whatever session object it is given, so it is tested on CPU stand-ins.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["CudaGraphs", "StaticSessions", "run_bound"]


def run_bound(
    session: Any,
    input_name: str,
    outputs: tuple[str, str],
    x: np.ndarray,
    device: tuple[str, int],
    run_options: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One run through IO binding: the input is copied to ``device`` (type, id) once, both
    outputs stay there until read back (with ``cams`` files only (N, h, w, L) crosses the bus).
    """
    kind, device_id = device
    binding = session.io_binding()
    binding.bind_cpu_input(input_name, x)
    for name in outputs:
        binding.bind_output(name, kind, device_id)
    if run_options is None:
        session.run_with_iobinding(binding)
    else:
        session.run_with_iobinding(binding, run_options)
    scores, maps = binding.copy_outputs_to_cpu()
    return scores, maps


class StaticSessions:
    """Sessions compiled for one input shape each, least recently used closed past ``limit``.
    Thread-safe: a shape's session is built once under a lock; runs happen outside it."""

    def __init__(
        self, build: Callable[[dict[str, int]], Any], dims: Mapping[int, str], limit: int
    ) -> None:
        self._build = build
        self._dims = dict(dims)  # position -> name of the input's dynamic dims
        self._limit = limit
        self._sessions: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, shape: tuple[int, ...]) -> Any:
        key = tuple(int(v) for v in shape)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                overrides = {name: key[i] for i, name in self._dims.items()}
                session = self._build(overrides)
                self._sessions[key] = session
                while len(self._sessions) > self._limit:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(key)
            return session


class CudaGraphs:
    """One captured CUDA graph per input shape (ONNX Runtime's ``gpu_graph_id`` run option).

    A graph replays fixed device addresses, so each shape gets its own input and output buffers,
    bound once; a run copies the input into its buffer, replays, and reads the outputs back.
    The first run of a shape goes uncaptured (``gpu_graph_id -1``) to learn the output shapes.
    Past ``limit`` shapes, runs go uncaptured. Runs are serialized (shared buffers).
    """

    def __init__(self, ort: Any, device_id: int, limit: int) -> None:
        self._ort = ort
        self._device_id = device_id
        self._limit = limit
        self._entries: dict[tuple[int, ...], tuple[Any, Any, list[Any], Any]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _options(self, graph_id: int) -> Any:
        options = self._ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return options

    def run(
        self, session: Any, input_name: str, outputs: tuple[str, str], x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(int(v) for v in x.shape)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                device = ("cuda", self._device_id)
                scores, maps = run_bound(session, input_name, outputs, x, device, self._options(-1))
                if len(self._entries) >= self._limit:
                    return scores, maps
                value = self._ort.OrtValue.ortvalue_from_shape_and_type
                inp = value(list(key), np.float32, "cuda", self._device_id)
                outs = [
                    value(list(a.shape), np.float32, "cuda", self._device_id)
                    for a in (scores, maps)
                ]
                binding = session.io_binding()
                binding.bind_ortvalue_input(input_name, inp)
                for name, out in zip(outputs, outs, strict=True):
                    binding.bind_ortvalue_output(name, out)
                entry = (binding, inp, outs, self._options(len(self._entries) + 1))
                self._entries[key] = entry
                return scores, maps
            binding, inp, outs, options = entry
            inp.update_inplace(x)
            session.run_with_iobinding(binding, options)
            return outs[0].numpy(), outs[1].numpy()
