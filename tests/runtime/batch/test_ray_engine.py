"""``cam-rt run --engine ray``: a local Ray instance (loopback only) gives the local engine's
outputs; resume; a failed image is recorded; a crashed actor's batch is retried, written once;
the driver opens no session on the model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.backend import session as session_module
from cam_rt.runtime.batch.inputs import discover_inputs
from cam_rt.runtime.batch.runner import RunConfig, Runner
from cam_rt.runtime.errors import ConfigError
from tests.onnx_models import channel_model

ray = pytest.importorskip("ray")

from cam_rt.runtime.batch.ray_engine import CamActor, RayConfig, RayRunner  # noqa: E402

SAVE = ("overlay", "heatmap", "maps", "seeds", "boxes")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray")
    model = channel_model(root / "m.onnx", channels=3, offset=0.3, class_names=("a", "b", "c"))
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((40, 52), (33, 33), (64, 48), (50, 70), (45, 45), (38, 60))):
        folder = images / "sub" if i % 2 else images
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"i{i}.png")
    (images / "broken.png").write_bytes(b"not a png")
    return model, images


EXPLAIN = ExplainConfig(TTAConfig((0.5, 1.0), True), ClassSelection("all"), batch_size=2)


def _explainer(model: Path) -> Explainer:
    return Explainer(CamSession(model), EXPLAIN)


def _records(outdir: Path) -> dict[str, dict]:
    out = {}
    for line in (outdir / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key in ("timings", "seconds"):
            record.pop(key, None)
        assert record["name"] not in out  # each image once
        out[record["name"]] = record
    return out


def _same_outputs(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for name in files_a:
        if name.endswith(".npz"):
            with np.load(a / name) as x, np.load(b / name) as y:
                for key in x.files:
                    np.testing.assert_array_equal(x[key], y[key])
        elif name != "results.jsonl":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert _records(a) == _records(b)


def test_ray_engine_writes_what_the_local_engine_writes(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    model, images = setup
    items = discover_inputs([str(images)])
    config = RunConfig(save=SAVE, grid=None)
    local = Runner(_explainer(model), tmp_path / "local", config).run(items)
    remote = RayRunner(
        model, EXPLAIN, tmp_path / "ray", config, ray_config=RayConfig(num_workers=2)
    ).run(items)
    assert (local.done, local.failed) == (remote.done, remote.failed) == (6, 1)
    assert remote.exit_code == local.exit_code == 2
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    broken = _records(tmp_path / "ray")["broken"]
    assert "broken.png" in broken["input"] and broken["error"]


def test_ray_resumes_a_partial_run(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, images = setup
    items = discover_inputs([str(images)])
    config = RunConfig(save=SAVE)
    Runner(_explainer(model), tmp_path / "full", config).run(items)
    part = Runner(_explainer(model), tmp_path / "part", config).run(items[:3])  # "interrupted"
    resumed = RunConfig(save=SAVE, skip_existing=True)
    summary = RayRunner(model, EXPLAIN, tmp_path / "part", resumed).run(items)
    # written images are skipped; the failed one (broken.png) is tried again
    assert part.done == 2 and summary.skipped == 2 and summary.done + summary.failed == 5
    _same_outputs(tmp_path / "full", tmp_path / "part")


class CrashOnce(CamActor):
    """Kills its own worker process on the first batch it sees (once per run)."""

    marker = ""

    def __call__(self, batch: dict) -> dict:  # type: ignore[override]
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("crashed")
            os._exit(1)
        return super().__call__(batch)


def test_a_crashed_actor_is_restarted_and_nothing_is_written_twice(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(__import__(__name__, fromlist=["*"]))
    model, images = setup
    items = discover_inputs([str(images)])
    CrashOnce.marker = str(tmp_path / "crashed")
    actor = type("CrashOnceHere", (CrashOnce,), {"marker": str(tmp_path / "crashed")})
    summary = RayRunner(
        model, _explainer(model), tmp_path / "out", RunConfig(save=SAVE), actor=actor
    ).run(items)
    assert (tmp_path / "crashed").is_file()  # the worker did die
    assert (summary.done, summary.failed) == (6, 1)
    assert len(_records(tmp_path / "out")) == 7  # each image once


@pytest.fixture
def no_session_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this (the driver's) process, opening a session on a model fails; the actors run in
    Ray's worker processes, which are not patched."""
    import onnxruntime

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the driver opened a session on the model")

    monkeypatch.setattr(session_module.CamSession, "__init__", refuse)
    monkeypatch.setattr(onnxruntime.InferenceSession, "__init__", refuse)


def test_the_driver_opens_no_session(
    setup: tuple[Path, Path], tmp_path: Path, no_session_here: None
) -> None:
    """The driver reads what it needs from the file's metadata: no CamSession (and so no CUDA
    session on a GPU machine) just to learn the class names."""
    model, images = setup
    items = discover_inputs([str(images)])
    engine = RayRunner(model, EXPLAIN, tmp_path / "ray", RunConfig(save=SAVE))
    assert engine.metadata.class_names == ("a", "b", "c")
    summary = engine.run(items)
    assert (summary.done, summary.failed) == (6, 1)
    assert [c["name"] for c in _records(tmp_path / "ray")["i0"]["classes"]] == ["a", "b", "c"]


def test_the_driver_refuses_unknown_labels_before_any_work(
    setup: tuple[Path, Path], tmp_path: Path, no_session_here: None
) -> None:
    model, _ = setup
    with pytest.raises(ConfigError, match="class 'purple'"):
        RayRunner(model, EXPLAIN, tmp_path / "o", labels={"i0": ["a"], "i1": ["purple"]})
    with pytest.raises(ConfigError, match="class id 7 is out of range"):
        fixed = ExplainConfig(classes=ClassSelection("fixed", labels=(7,)))
        RayRunner(model, fixed, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_the_driver_refuses_impossible_kinds_before_any_work(
    setup: tuple[Path, Path], tmp_path: Path, no_session_here: None
) -> None:
    """As the local engine: a --save kind that cannot work with the model (seeds of 70,000
    classes) is refused before the output folder is made or an actor starts."""
    _, images = setup
    names = tuple(f"k{i}" for i in range(70000))
    model = channel_model(tmp_path / "wide.onnx", channels=3, class_names=names)
    engine = RayRunner(model, ExplainConfig(), tmp_path / "o", RunConfig(save=("overlay", "seeds")))
    with pytest.raises(ConfigError, match=r"--save seeds .*70000 classes"):
        engine.run(discover_inputs([str(images)]))
    assert not (tmp_path / "o").exists()


def test_cli_engine_ray(setup: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cam_rt.runtime.cli import get_app

    model, images = setup
    args = ["run", str(model), str(images), "-o", str(tmp_path / "o"), "--engine", "ray", "-q"]
    result = CliRunner().invoke(get_app(), [*args, "--num-workers", "1"])
    assert result.exit_code == 2, result.output  # the broken image
    assert len(_records(tmp_path / "o")) == 7
    bad = CliRunner().invoke(get_app(), [*args, "--engine", "spark"])
    assert bad.exit_code == 1 and "--engine 'spark' is unknown" in bad.output


class ProbeLock(CamActor):
    """Tries the output folder's lock from its worker process on each batch (it must be
    taken: the driver holds it while the actors work) and notes what it found."""

    outdir = ""

    def __call__(self, batch: dict) -> dict:  # type: ignore[override]
        import fcntl

        with open(Path(self.outdir) / ".cam-rt.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                found = "free"
            except BlockingIOError:
                found = "held"
        with open(Path(self.outdir).parent / "probe.txt", "a") as notes:
            notes.write(found + "\n")
        return super().__call__(batch)


def test_the_folder_is_locked_for_the_whole_ray_run(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    import fcntl

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(__import__(__name__, fromlist=["*"]))
    model, images = setup
    items = discover_inputs([str(images)])
    out = tmp_path / "out"
    actor = type("ProbeLockHere", (ProbeLock,), {"outdir": str(out)})
    summary = RayRunner(model, EXPLAIN, out, RunConfig(save=("overlay",)), actor=actor).run(items)
    assert (summary.done, summary.failed) == (6, 1)
    assert set((tmp_path / "probe.txt").read_text().split()) == {"held"}
    assert not (out / ".cam-rt.lock").exists()  # released and removed at the end
    with (out / ".cam-rt.lock").open("w") as held:  # another run holds it: refused at once
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(f"{os.getpid()}\n")
        held.flush()
        with pytest.raises(ConfigError, match=f"another cam-rt run \\(pid {os.getpid()}\\)"):
            RayRunner(model, EXPLAIN, out, RunConfig(save=("overlay",))).run(items)


def test_an_actor_records_any_decode_error_for_its_image(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the decoder raises (here struct.error for i1) is that row's error."""
    import struct

    from cam_rt.runtime.batch import steps

    model, images = setup
    read = steps.read_image

    def flaky(path: Path, *args: object) -> object:
        if path.name == "i0.png":
            raise struct.error("unpack requires a buffer of 4 bytes")
        return read(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(steps, "read_image", flaky)
    actor = CamActor(str(model), session_module.SessionConfig(), EXPLAIN, 10**6)
    paths = [str(images / "i0.png"), str(images / "i2.png")]
    out = actor(
        {"index": np.arange(2), "path": np.asarray(paths), "labels": np.asarray(["null"] * 2)}
    )
    assert "struct.error: unpack requires a buffer of 4 bytes" in out["error"][0]
    assert out["error"][1] == "" and out["maps"][1].shape[:2] == (64, 48)
