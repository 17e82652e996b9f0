"""Runs tied to the input shape, on CPU: IO-bound runs, per-shape sessions, CUDA graphs (their
logic on stand-ins for onnxruntime's device buffers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cam_rt.runtime import CamSession, SessionConfig
from cam_rt.runtime.backend.shapes import CudaGraphs, StaticSessions, run_bound
from tests.onnx_models import channel_model


class _FakeValue:
    def __init__(self, shape: list[int]) -> None:
        self.shape, self.data = tuple(shape), np.zeros(shape, np.float32)

    def update_inplace(self, x: np.ndarray) -> None:
        assert x.shape == self.shape  # a graph's buffers never change shape
        self.data[...] = x

    def numpy(self) -> np.ndarray:
        return self.data.copy()


class _FakeOrt:
    """The parts of onnxruntime that CUDA graph runs use, recording what happens."""

    def __init__(self) -> None:
        self.allocated: list[tuple[int, ...]] = []
        ort = self

        class RunOptions:
            def __init__(self) -> None:
                self.entries: dict[str, str] = {}

            def add_run_config_entry(self, key: str, value: str) -> None:
                self.entries[key] = value

        class OrtValue:
            @staticmethod
            def ortvalue_from_shape_and_type(
                shape: list[int], dtype: object, device: str, device_id: int
            ) -> _FakeValue:
                assert device == "cuda" and device_id == 1
                ort.allocated.append(tuple(shape))
                return _FakeValue(shape)

        self.RunOptions, self.OrtValue = RunOptions, OrtValue


class _FakeSession:
    """scores = mean over pixels, maps = the input halved in size: a model stand-in."""

    def __init__(self) -> None:
        self.graph_ids: list[str] = []
        self.bound: list[tuple[str, str, int]] = []

    @staticmethod
    def compute(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps = x[:, ::2, ::2, :2]
        return maps.mean(axis=(1, 2)), np.ascontiguousarray(maps)

    def io_binding(self) -> Any:
        session = self

        class Binding:
            def __init__(self) -> None:
                self.cpu: np.ndarray | None = None
                self.inp: _FakeValue | None = None
                self.outs: list[_FakeValue] = []

            def bind_cpu_input(self, name: str, x: np.ndarray) -> None:
                self.cpu = x

            def bind_output(self, name: str, device: str, device_id: int) -> None:
                session.bound.append((name, device, device_id))

            def bind_ortvalue_input(self, name: str, value: _FakeValue) -> None:
                self.inp = value

            def bind_ortvalue_output(self, name: str, value: _FakeValue) -> None:
                self.outs = [*self.outs, value]

            def copy_outputs_to_cpu(self) -> tuple[np.ndarray, np.ndarray]:
                return self.result

            def run(self, options: Any) -> None:
                session.graph_ids.append(
                    "none" if options is None else options.entries["gpu_graph_id"]
                )
                if self.cpu is not None:
                    self.result = session.compute(self.cpu)
                else:
                    assert self.inp is not None
                    for out, value in zip(self.outs, session.compute(self.inp.data), strict=True):
                        out.data[...] = value

        return Binding()

    def run_with_iobinding(self, binding: Any, options: Any = None) -> None:
        binding.run(options)


def test_static_shape_sessions_match_and_stay_bounded(tmp_path: Path) -> None:
    """Per-shape sessions (OpenVINO's mode) on the CPU provider: same outputs, LRU bound."""
    path = channel_model(tmp_path / "m.onnx", channels=3, offset=0.1)
    dynamic = CamSession(path)
    static = CamSession(path, SessionConfig(static_shapes=True, max_static_sessions=2))
    assert dynamic.static_sessions is None and static.static_sessions == 0
    rng = np.random.default_rng(3)
    for shape in ((1, 10, 12), (2, 10, 12), (1, 10, 12), (1, 7, 9), (1, 10, 12)):
        x = rng.uniform(0, 255, (*shape, 3)).astype(np.float32)
        for a, b in zip(dynamic.run(x), static.run(x), strict=True):
            np.testing.assert_array_equal(a, b)
        assert static.static_sessions is not None and static.static_sessions <= 2


def test_static_sessions_build_each_shape_once_under_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    built: list[dict[str, int]] = []

    def build(overrides: dict[str, int]) -> object:
        built.append(overrides)
        return object()

    cache = StaticSessions(build, {0: "batch", 1: "height", 2: "width"}, limit=3)
    shapes = [(1, 8, 8, 3), (2, 8, 8, 3)] * 20
    with ThreadPoolExecutor(4) as pool:
        sessions = list(pool.map(cache.get, shapes))
    assert len(built) == 2 and len({id(s) for s in sessions}) == 2
    assert {"batch": 2, "height": 8, "width": 8} in built
    for i in range(5):  # least recently used sessions are dropped past the limit
        cache.get((1, 16 + i, 8, 3))
    assert len(cache) == 3


def test_cuda_graph_per_shape_with_fixed_buffers() -> None:
    """The CUDA-graph runner's logic on CPU stand-ins: first run of a shape uncaptured (it gives
    the output shapes), then one graph id and one set of device buffers per shape, replayed."""
    ort, session = _FakeOrt(), _FakeSession()
    graphs = CudaGraphs(ort, device_id=1, limit=2)
    rng = np.random.default_rng(0)
    shapes = [(1, 8, 8, 3), (1, 8, 8, 3), (1, 8, 8, 3), (2, 8, 8, 3), (2, 8, 8, 3), (1, 4, 6, 3)]
    for shape in shapes:
        x = rng.uniform(0, 255, shape).astype(np.float32)
        scores, maps = graphs.run(session, "images", ("scores", "cams"), x)
        want_scores, want_maps = _FakeSession.compute(x)
        np.testing.assert_array_equal(scores, want_scores)
        np.testing.assert_array_equal(maps, want_maps)
    # shape 1: uncaptured, then graph 1 twice; shape 2: uncaptured, graph 2; shape 3: past the
    # limit of 2 graphs, uncaptured.
    assert session.graph_ids == ["-1", "1", "1", "-1", "2", "-1"]
    assert len(graphs) == 2
    assert ort.allocated == [  # input, scores, maps buffers for each captured shape, once
        (1, 8, 8, 3),
        (1, 2),
        (1, 4, 4, 2),
        (2, 8, 8, 3),
        (2, 2),
        (2, 4, 4, 2),
    ]


def test_bound_runs_keep_outputs_on_the_given_device() -> None:
    session = _FakeSession()
    x = np.random.default_rng(4).uniform(0, 255, (2, 6, 4, 3)).astype(np.float32)
    scores, maps = run_bound(session, "images", ("scores", "cams"), x, ("cuda", 1))
    for got, want in zip((scores, maps), _FakeSession.compute(x), strict=True):
        np.testing.assert_array_equal(got, want)
    assert session.bound == [("scores", "cuda", 1), ("cams", "cuda", 1)]
    assert session.graph_ids == ["none"]  # no run options: an ordinary (uncaptured) run
