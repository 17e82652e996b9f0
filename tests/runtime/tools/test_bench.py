"""``cam-rt bench`` and the timing/statistics helpers behind it and the benchmark scripts."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ExplainConfig,
    Explainer,
    InputSize,
    TTAConfig,
)
from cam_rt.runtime.cli import get_app
from cam_rt.runtime.errors import ConfigError
from cam_rt.runtime.tools.bench import (
    DEFAULT_SIZES,
    BenchConfig,
    SizeResult,
    bench_model,
    bench_sizes,
    latency_stats,
    parse_size,
    time_call,
)
from tests.onnx_models import channel_metadata, channel_model

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"
sys.path.insert(0, str(BENCH))
from common import model_gflop  # noqa: E402


def test_latency_stats_known_answer() -> None:
    s = latency_stats([0.5, 0.1, 0.4, 0.2, 0.3])
    assert (s.n, s.minimum, s.maximum) == (5, 0.1, 0.5)
    assert s.mean == pytest.approx(0.3)
    assert s.p50 == pytest.approx(0.3) and s.q1 == pytest.approx(0.2)
    assert s.q3 == pytest.approx(0.4) and s.iqr == pytest.approx(0.2)
    # Linear interpolation between order statistics: p90 of 1..100 is 90.1, p99 is 99.01.
    t = latency_stats(range(1, 101))
    assert t.p90 == pytest.approx(90.1) and t.p99 == pytest.approx(99.01)
    assert latency_stats([2.0]).as_dict()["iqr"] == 0.0


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_latency_stats_rejects(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        latency_stats(bad)


def test_parse_size() -> None:
    assert parse_size("320") == (320, 320)
    assert parse_size("240x320") == (240, 320)
    assert parse_size(" 64X48 ") == (64, 48)
    for bad in ("0", "x", "3x4x5", "-2", "abc"):
        with pytest.raises(ConfigError, match="is not N or HxW"):
            parse_size(bad)


def test_bench_config_validation() -> None:
    assert BenchConfig(sizes=[[10, 20]]).sizes == ((10, 20),)  # type: ignore[arg-type]
    assert BenchConfig().sizes == ()  # the model's trained size, else DEFAULT_SIZES
    with pytest.raises(ConfigError, match="input_size 'model' must be an InputSize"):
        BenchConfig(input_size="model")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="repeat 0"):
        BenchConfig(repeat=0)
    with pytest.raises(ConfigError, match="batch True"):
        BenchConfig(batch=True)
    with pytest.raises(ConfigError, match="warmup -1"):
        BenchConfig(warmup=-1)


def test_time_call_uses_the_clock() -> None:
    ticks = iter([10.0, 10.25])
    assert time_call(lambda: None, lambda: next(ticks)) == 0.25


class _CountingSession:
    """Stands in for CamSession: records the batch shapes it is run on."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.path = Path("counting.onnx")
        self.metadata = channel_metadata()

    def run(self, batch: np.ndarray) -> None:
        self.shapes.append(batch.shape)


def test_bench_model_runs_first_warmup_and_repeats() -> None:
    session = _CountingSession()
    clock = itertools.count(0.0, 0.5).__next__  # every reading 0.5 s after the previous one
    config = BenchConfig(sizes=((8, 12), (16, 16)), batch=2, repeat=3, warmup=1)
    lines: list[str] = []
    results = bench_model(session, config, lines.append, clock)  # type: ignore[arg-type]
    # Per size: 1 first run + 1 warm-up + 3 measured runs, in order of the sizes.
    assert session.shapes == [(2, 8, 12, 3)] * 5 + [(2, 16, 16, 3)] * 5
    assert [(r.height, r.width, r.batch) for r in results] == [(8, 12, 2), (16, 16, 2)]
    assert all(r.stats.n == 3 and r.stats.p50 == 0.5 and r.first_run == 0.5 for r in results)
    assert results[0].images_per_second == 4.0 and results[0].first_run_extra == 0.0
    assert len(lines) == 2 and lines[0].startswith("8x12 batch 2: p50 500.0 ms")


def test_size_result_extra_cost() -> None:
    r = SizeResult(4, 4, 1, 0.9, latency_stats([0.1, 0.2, 0.3]))
    assert r.first_run_extra == pytest.approx(0.7)
    assert r.as_dict()["latency_s"]["p50"] == pytest.approx(0.2)


def test_bench_model_real_session_with_tta(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx", channels=2))
    explain = ExplainConfig(tta=TTAConfig((1.0, 2.0)))
    config = BenchConfig(sizes=((20, 24),), repeat=2, warmup=0, explain=explain)
    (result,) = bench_model(session, config)
    assert result.stats.n == 2 and result.stats.minimum > 0


def test_cli_bench_table_and_json(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3)
    out = tmp_path / "sub" / "bench.json"
    out.parent.mkdir()
    args = ["bench", str(model), "--sizes", "16,12x20", "--repeat", "3", "--json", str(out)]
    result = CliRunner().invoke(get_app(), [*args, "--tta", "--scales", "1,0.5"])
    assert result.exit_code == 0, result.output
    assert "16x16" in result.stdout and "12x20" in result.stdout and "p99 ms" in result.stdout
    payload = json.loads(out.read_text())
    assert payload["mode"] == "explain with TTA" and payload["tta"]["scales"] == [1.0, 0.5]
    assert [(s["height"], s["width"]) for s in payload["sizes"]] == [(16, 16), (12, 20)]
    assert all(s["latency_s"]["n"] == 3 for s in payload["sizes"])


def test_cli_bench_bad_size_is_one_line(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx")
    result = CliRunner().invoke(get_app(), ["bench", str(model), "--sizes", "12,big"])
    assert result.exit_code == 1
    assert "size 'big' is not N or HxW" in result.output and "Traceback" not in result.output


def test_explain_timings_cover_every_stage(tmp_path: Path) -> None:
    session = CamSession(channel_model(tmp_path / "m.onnx", channels=2, kind="features"))
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for tta in (None, TTAConfig((0.5, 1.0))):
        timings: dict[str, float] = {}
        config = ExplainConfig(tta=tta, classes=ClassSelection("all"))
        Explainer(session, config).explain(image, timings=timings)
        assert set(timings) == {
            "prepare",
            "resize_input",
            "preprocess",
            "onnxruntime",
            "cam_weighting",
            "select",
            "tta_resize",
            "normalize",
        }
        assert all(v >= 0 for v in timings.values())


def _conv_model(path: Path) -> Path:
    """NHWC input -> Transpose -> 3x3 conv 3->4 (pad 1) -> 1x1 conv 4->2, stride 2."""
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", "h", "w", 3])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [4, 3, 3, 3], np.zeros(108).tolist())
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [2, 4, 1, 1], np.zeros(8).tolist())
    nodes = [
        helper.make_node("Transpose", ["images"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "w2"], ["y"], strides=[2, 2]),
    ]
    graph = helper.make_graph(nodes, "g", [inp], [out], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_model_gflop_counts_convolutions(tmp_path: Path) -> None:
    path = _conv_model(tmp_path / "c.onnx")
    # 3x3 conv: 2 * (10*12*4 outputs) * (3*3*3); 1x1 stride 2: 2 * (5*6*2) * 4.
    expected = 2 * 10 * 12 * 4 * 27 + 2 * 5 * 6 * 2 * 4
    assert model_gflop(path, 10, 12) == pytest.approx(expected / 1e9)
    assert model_gflop(path, 10, 12, batch=3) == pytest.approx(3 * expected / 1e9)


def test_bench_sizes_follow_the_input_size(tmp_path: Path) -> None:
    trained = channel_model(tmp_path / "t.onnx", input_size=(8, 8))
    meta = CamSession(trained).metadata
    # No sizes: the trained size; listed sizes with auto run as given (dynamic file).
    assert bench_sizes(BenchConfig(), meta)[1] == [((8, 8), (8, 8))]
    assert bench_sizes(BenchConfig(sizes=((16, 16),)), meta) == (
        InputSize("image"),
        [((16, 16), (16, 16))],
    )
    explicit = BenchConfig(sizes=((20, 30),), input_size=InputSize("model"))
    assert bench_sizes(explicit, meta)[1] == [((20, 30), (8, 8))]
    side = BenchConfig(sizes=((20, 30),), input_size=InputSize.parse("10"))
    assert bench_sizes(side, meta)[1] == [((20, 30), (10, 15))]
    plain = channel_metadata()
    assert bench_sizes(BenchConfig(), plain)[1] == [(s, s) for s in DEFAULT_SIZES]
    fixed = channel_metadata(input_size=(8, 8), fixed_size=True)
    assert bench_sizes(BenchConfig(sizes=((8, 8),)), fixed)[0] == InputSize("model")
    with pytest.raises(ConfigError, match=r"^f.onnx takes only 8x8 inputs .*: --sizes 16x16 "):
        bench_sizes(BenchConfig(sizes=((8, 8), (16, 16))), fixed, "f.onnx")


def test_cli_bench_at_the_model_size(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", input_size=(8, 8), fixed_size=True)
    out = tmp_path / "bench.json"
    base = ["bench", str(model), "--repeat", "2", "--json", str(out)]
    result = CliRunner().invoke(get_app(), base)
    assert result.exit_code == 0, result.output
    assert [
        (s["height"], s["width"], s["image"]) for s in json.loads(out.read_text())["sizes"]
    ] == [(8, 8, None)]
    resized = CliRunner().invoke(
        get_app(), [*base, "--tta", "--scales", "1", "--input-size", "model", "--sizes", "20x30"]
    )
    assert resized.exit_code == 0, resized.output
    assert "20x30 -> 8x8" in resized.stdout
    assert json.loads(out.read_text())["sizes"][0]["image"] == [20, 30]
    refused = CliRunner().invoke(get_app(), [*base, "--tta"])
    assert refused.exit_code == 1 and "pass --scales 1" in refused.stderr
