"""``--device auto`` / ``--precision auto`` by measurement: the decision rule on stand-in timings,
the candidates, the cache key, the cache (reuse, corrupt files) and the file hash."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from cam_rt.runtime.backend.precision import (
    TIMED_RUNS,
    WARMUP_RUNS,
    Candidate,
    Decision,
    DecisionCache,
    Measurement,
    cache_dir,
    choice_key,
    choose,
    cpu_model,
    file_sha256,
    measure,
    plan_candidates,
)
from cam_rt.runtime.errors import ConfigError

CPU, OV32, BF16 = (
    Candidate("cpu", "fp32"),
    Candidate("openvino", "fp32"),
    Candidate("openvino", "bf16"),
)


def test_the_fastest_within_the_bound_wins() -> None:
    found = [
        Measurement(CPU, 0.30, 0.0),
        Measurement(OV32, 0.20, 1e-6),
        Measurement(BF16, 0.10, 0.004),
    ]
    assert choose(found).candidate == BF16
    found[2] = Measurement(BF16, 0.10, 0.0051)  # just outside: never chosen, however fast
    assert choose(found).candidate == OV32
    found[2] = Measurement(BF16, 0.01, math.nan)  # maps not comparable: never chosen
    assert choose(found).candidate == OV32
    assert choose(found, bound=0.0).candidate == CPU  # the reference is always within
    tie = [Measurement(CPU, 0.2, 0.0), Measurement(OV32, 0.2, 0.0)]
    assert choose(tie).candidate == CPU  # ties: the earlier (the reference) one
    with pytest.raises(ConfigError, match="no candidate's maps are within"):
        choose([Measurement(BF16, 0.1, 0.5)])


def test_measure_times_each_candidate_and_compares_its_maps_to_the_reference() -> None:
    """Stand-in engines with known costs (a fake clock) and known maps."""
    now = [0.0]
    cost = {CPU: 0.30, OV32: 0.20, BF16: 0.10}
    base = np.zeros((1, 4, 4, 2), np.float32)
    base[0, 1, 1, 0] = base[0, 2, 2, 1] = 1.0
    # one of 32 values off (after normalization: relu, then 0..1 per image and class)
    shift = {CPU: 0.0, OV32: 0.1, BF16: 0.2}
    calls: dict[Candidate, int] = {}
    compiled: list[Candidate] = []

    def runner_for(c: Candidate):  # type: ignore[no-untyped-def]
        compiled.append(c)

        def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            calls[c] = calls.get(c, 0) + 1
            now[0] += cost[c]
            maps = base.copy()
            maps[0, 0, 0, 0] = shift[c]
            return np.zeros((1, 2), np.float32), maps

        return run

    x = np.zeros((1, 8, 8, 3), np.float32)
    found, outputs = measure([CPU, OV32, BF16], runner_for, x, clock=lambda: now[0])
    assert compiled == [CPU, OV32, BF16]
    assert calls == {c: WARMUP_RUNS + TIMED_RUNS for c in cost}
    assert [m.candidate for m in found] == [CPU, OV32, BF16]
    assert [m.seconds for m in found] == pytest.approx([0.30, 0.20, 0.10])
    assert [m.mean_abs for m in found] == pytest.approx([0.0, 0.1 / 32, 0.2 / 32])
    assert choose(found).candidate == OV32  # bf16 was fastest but outside the bound
    assert set(outputs) == {CPU, OV32, BF16} and outputs[OV32][1].shape == (1, 4, 4, 2)


def test_candidates_per_file_and_options() -> None:
    assert plan_candidates("fp32", True, "auto", True) == ([CPU, OV32, BF16], "")
    plain, note = plan_candidates("fp32", True, "auto", False)
    assert plain == [CPU, OV32] and "no bf16" in note
    assert plan_candidates("fp32", False, "auto", True)[0] == [OV32, BF16]
    assert plan_candidates("fp32", False, "auto", False)[0] == [OV32]
    assert plan_candidates("fp32", True, "fp32", True)[0] == [CPU, OV32]
    assert plan_candidates("fp32", True, "bf16", True)[0] == [BF16]  # forced
    int8, note = plan_candidates("int8", True, "auto", True)
    assert int8 == [Candidate("cpu", "int8"), Candidate("openvino", "int8")]
    assert "the file is int8" in note  # never fp32 or bf16 for an int8 file
    assert plan_candidates("int8", False, "auto", True)[0] == [Candidate("openvino", "int8")]
    assert plan_candidates("fp16", False, "auto", True)[0] == [Candidate("openvino", "fp16")]


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: {family}
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu avx2 {extra}
processor\t: 1
model name\t: something else
"""


def test_cpu_model_tells_apart_cpus_of_one_name() -> None:
    zen3 = cpu_model(CPUINFO.format(family=25, extra=""))
    assert zen3.startswith("AMD EPYC (AuthenticAMD family 25 model 1, flags ")
    assert cpu_model(CPUINFO.format(family=25, extra="")) == zen3
    assert cpu_model(CPUINFO.format(family=26, extra="")) != zen3
    assert cpu_model(CPUINFO.format(family=25, extra="avx512_bf16")) != zen3  # same name, flags
    assert (
        cpu_model("")
        == "unknown CPU (? family ? model ?, flags " + hashlib.sha256(b"").hexdigest()[:12] + ")"
    )


def _decision(chosen: Candidate = OV32) -> Decision:
    found = (Measurement(CPU, 0.3, 0.0), Measurement(OV32, 0.2, 1e-6))
    return Decision(chosen, found, (1, 112, 112, 3), "2026-12-02")


def test_the_key_names_what_the_decision_depends_on() -> None:
    key = choice_key(
        "AMD EPYC (x)", "onnxruntime 1.24.1, OpenVINO 2025.4.1", "ab" * 32, [CPU, OV32], 0
    )
    assert key == {
        "cpu": "AMD EPYC (x)",
        "engine": "onnxruntime 1.24.1, OpenVINO 2025.4.1",
        "model_sha256": "ab" * 32,
        "candidates": ["cpu fp32", "openvino fp32"],
        "threads": 0,
    }
    other = [
        {**key, "cpu": "AMD EPYC (y)"},
        {**key, "engine": "onnxruntime 1.24.1, OpenVINO 2026.0.0"},
        {**key, "model_sha256": "cd" * 32},
        {**key, "candidates": ["cpu fp32", "openvino fp32", "openvino bf16"]},
        {**key, "threads": 2},
    ]
    assert len({json.dumps(k, sort_keys=True) for k in [key, *other]}) == 6  # all distinct


def test_cache_reuse_and_keys(tmp_path: Path) -> None:
    key = choice_key("cpu A", "engine 1", "ab" * 32, [CPU, OV32], 0)
    DecisionCache(tmp_path).put(key, _decision())
    found = DecisionCache(tmp_path).get(key)  # another process: read from the file
    assert found is not None
    assert (found.chosen, found.measurements, found.shape, found.date) == (
        OV32,
        _decision().measurements,
        (1, 112, 112, 3),
        "2026-12-02",
    )
    assert found.source == f"cache {tmp_path / 'choices.json'}"
    assert (
        "openvino fp32 (measured on 1x112x112x3, 2026-12-02: cpu fp32 300.0 ms" in found.describe()
    )
    for changed in ({"cpu": "cpu B"}, {"model_sha256": "cd" * 32}, {"threads": 2}):
        assert DecisionCache(tmp_path).get({**key, **changed}) is None
    second = {**key, "model_sha256": "cd" * 32}
    DecisionCache(tmp_path).put(second, _decision(CPU))
    assert DecisionCache(tmp_path).get(key).chosen == OV32  # type: ignore[union-attr]
    assert DecisionCache(tmp_path).get(second).chosen == CPU  # type: ignore[union-attr]
    assert sorted(d.chosen for _, d in DecisionCache(tmp_path).all()) == [CPU, OV32]
    assert not [p for p in tmp_path.iterdir() if p.name != "choices.json"]  # no temporary left


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"[1, 2]", b'{"decisions": 3}', b"\xff\xfe\x00garbage"],
)
def test_a_corrupt_cache_file_is_ignored_and_rewritten(tmp_path: Path, content: bytes) -> None:
    key = choice_key("cpu A", "engine 1", "ab" * 32, [CPU, OV32], 0)
    (tmp_path / "choices.json").write_bytes(content)
    cache = DecisionCache(tmp_path)
    assert cache.get(key) is None and cache.all() == []
    cache.put(key, _decision())
    data = json.loads((tmp_path / "choices.json").read_text())  # valid JSON again
    assert data["version"] == 1 and len(data["decisions"]) == 1
    assert DecisionCache(tmp_path).get(key).chosen == OV32  # type: ignore[union-attr]


def test_a_malformed_entry_reads_as_no_decision(tmp_path: Path) -> None:
    key = choice_key("cpu A", "engine 1", "ab" * 32, [CPU, OV32], 0)
    cache = DecisionCache(tmp_path)
    cache.put(key, _decision())
    data = json.loads(cache.path.read_text())
    (entry,) = data["decisions"].values()
    entry["decision"]["measurements"] = [["cpu", "fp32", "fast"]]
    cache.path.write_text(json.dumps(data))
    assert cache.get(key) is None
    cache.put(key, _decision(CPU))
    assert cache.get(key).chosen == CPU  # type: ignore[union-attr]


def test_cache_folder_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAM_RT_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    assert DecisionCache().path == tmp_path / "mine" / "choices.json"
    monkeypatch.delenv("CAM_RT_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "cam-rt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "cam-rt"


def test_an_unwritable_cache_folder_costs_a_measurement_not_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = DecisionCache(blocker / "cam-rt")
    key = choice_key("cpu A", "engine 1", "ab" * 32, [CPU, OV32], 0)
    cache.put(key, _decision())  # nothing raised
    assert cache.get(key) is None


def test_file_hash_is_streamed_and_remembered_per_size_and_mtime(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one block
    model.write_bytes(data)
    folder = tmp_path / "cache"
    assert file_sha256(model, folder) == hashlib.sha256(data).hexdigest()
    store = folder / "hashes.json"
    remembered = json.loads(store.read_text())
    assert list(remembered.values()) == [hashlib.sha256(data).hexdigest()]
    store.write_text(json.dumps({k: "0" * 64 for k in remembered}))  # prove it is read back
    assert file_sha256(model, folder) == "0" * 64
    model.write_bytes(data[:-1])  # another size (and mtime): hashed again
    assert file_sha256(model, folder) == hashlib.sha256(data[:-1]).hexdigest()
    assert file_sha256(model) == hashlib.sha256(data[:-1]).hexdigest()  # no folder: no store
    store.write_text("{broken")
    assert file_sha256(model, folder) == hashlib.sha256(data[:-1]).hexdigest()
