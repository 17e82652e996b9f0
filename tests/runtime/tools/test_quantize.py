"""``cam-rt quantize``: int8 QDQ on the trained demo model (and a tiny hand-built one), fidelity
report, refusal, atomicity, the image sizes calibration and the fidelity check share."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from PIL import Image
from typer.testing import CliRunner

from cam_rt.runtime import CamSession, ExplainConfig, Explainer, TTAConfig
from cam_rt.runtime.cli import get_app
from cam_rt.runtime.errors import CamRtError, ConfigError, ExportError, FidelityError
from cam_rt.runtime.tools.quantize import (
    QuantizeConfig,
    calibration_inputs,
    load_calibration,
    map_fidelity,
    quantize_model,
    report_dict,
    sized_images,
)
from tests.onnx_models import channel_model


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    from cam_rt.export import ExportConfig, export_model
    from cam_rt.export.train_demo import load_demo_model

    folder = tmp_path_factory.mktemp("demo")
    (folder / "classes.txt").write_text("circle\nsquare\ntriangle\nstar\nring\nellipse\n")
    path = folder / "demo.onnx"
    export_model(load_demo_model(), path, ExportConfig(classes=str(folder / "classes.txt")))
    return path


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cam_rt.export.synthetic import generate

    folder = tmp_path_factory.mktemp("calib")
    for i, sample in enumerate(generate(6, 5)):
        Image.fromarray(sample.image).save(folder / f"c{i}.png")
    return folder


def test_map_fidelity_known_answers() -> None:
    a = np.zeros((2, 2, 1), np.float32)
    a[0, 0] = 1.0
    b = a.copy()
    b[1, 1] = 1.0  # cosine 1/sqrt(2), max abs 1, mean abs 1/4
    f = map_fidelity([a, a], [a, b], [3, 3], [3, 4])
    assert f.images == 2 and f.min_cosine == pytest.approx(2**-0.5)
    assert f.mean_cosine == pytest.approx((1 + 2**-0.5) / 2)
    assert (f.max_abs, f.mean_abs, f.top1_agreement) == (1.0, 0.125, 0.5)
    zero = np.zeros((2, 2, 1), np.float32)
    assert map_fidelity([zero], [zero]).mean_cosine == 1.0
    with pytest.raises(ValueError):
        map_fidelity([a], [np.zeros((3, 2, 1))])


def test_quantize_writes_a_faithful_int8_file(demo_onnx: Path, calibration: Path) -> None:
    from cam_rt.runtime.tools.quantize import load_calibration

    out = demo_onnx.parent / "demo.int8.onnx"
    images = load_calibration(calibration, 6)
    report = quantize_model(demo_onnx, images, out, QuantizeConfig(floor=0.9))
    assert out.is_file() and report.path == out and report.calibration_inputs == 6 * 8
    assert out.stat().st_mode & 0o044  # not mkstemp's private 0600
    assert report.fidelity.mean_cosine >= 0.9 and report.fidelity.images == 6
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props["cam_rt.quantization"])
    assert meta["calibration_images"] == 6 and len(meta["float_nodes"]) == 1
    # The file works like any cam-rt file, with the same classes.
    session = CamSession(out)
    assert session.class_names == CamSession(demo_onnx).class_names
    (r,) = Explainer(session, ExplainConfig()).explain(images[0])
    assert r.maps.shape[:2] == images[0].shape[:2]
    assert report.bytes_after < report.bytes_before


def test_quantize_refuses_below_the_floor_and_writes_nothing(
    demo_onnx: Path, calibration: Path
) -> None:
    from cam_rt.runtime.tools.quantize import load_calibration

    out = demo_onnx.parent / "refused.onnx"
    images = load_calibration(calibration, 2)
    with pytest.raises(FidelityError, match="below the fidelity floor"):
        quantize_model(demo_onnx, images, out, QuantizeConfig(floor=1.0, tta=None))
    assert not out.exists() and not list(out.parent.glob(".cam-rt-*.tmp"))
    forced = quantize_model(demo_onnx, images, out, QuantizeConfig(floor=1.0, force=True, tta=None))
    assert forced.path == out and CamSession(out).class_names == CamSession(demo_onnx).class_names
    with pytest.raises(ConfigError, match="overwrite the input model"):
        quantize_model(demo_onnx, images, demo_onnx)
    with pytest.raises(ConfigError, match="no calibration images"):
        quantize_model(demo_onnx, [], out)


def test_cli_quantize(demo_onnx: Path, calibration: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "q.onnx", tmp_path / "q.json"
    args = ["quantize", str(demo_onnx), "--calibration", str(calibration), "-o", str(out)]
    result = CliRunner().invoke(
        get_app(), [*args, "--images", "3", "--floor", "0.5", "--json", str(report)]
    )
    assert result.exit_code == 0, result.output
    assert "maps vs float: cosine" in result.stdout and out.is_file()
    assert json.loads(report.read_text())["fidelity"]["images"] == 3
    refused = CliRunner().invoke(get_app(), [*args, "--images", "2", "--floor", "1.0", "--no-tta"])
    assert refused.exit_code == 1 and "below the fidelity floor" in refused.output
    bad = CliRunner().invoke(
        get_app(),
        ["quantize", str(demo_onnx), "--calibration", str(tmp_path / "nope"), "-o", str(out)],
    )
    assert bad.exit_code == 1 and "is not a folder" in bad.output


def test_histogram_methods_calibrate_on_mixed_sizes(demo_onnx: Path, calibration: Path) -> None:
    """ONNX Runtime's entropy/percentile collectors stack activations: one shape is fed."""
    from cam_rt.runtime.tools.quantize import load_calibration, one_shape

    batches = [np.zeros((1, h, w, 3), np.float32) for h, w in ((40, 60), (50, 50), (80, 30))]
    assert {b.shape for b in one_shape(batches)} == {(1, 60, 60, 3)}
    images = load_calibration(calibration, 2)
    out = demo_onnx.parent / "demo.percentile.onnx"
    report = quantize_model(demo_onnx, images, out, QuantizeConfig(method="percentile", floor=0.5))
    assert report.calibration_inputs == 2 * 8 and CamSession(out).metadata.num_classes == 6


def test_fixed_size_file_is_calibrated_at_its_size(tmp_path: Path, calibration: Path) -> None:
    """A fixed-size export (Flatten head) calibrates and checks at its trained size only."""
    pytest.importorskip("tensorflow")
    import keras

    from cam_rt.export import export_model
    from cam_rt.runtime.tools.quantize import calibration_inputs, load_calibration

    keras.utils.set_random_seed(0)
    inp = keras.Input((40, 56, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(6, 3, strides=4, padding="same", activation="relu")(x)
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(x))
    path = tmp_path / "fixed.onnx"
    export_model(keras.Model(inp, keras.layers.Dense(3, activation="sigmoid")(x)), path)
    images = load_calibration(calibration, 3)
    session = CamSession(path)
    shapes = {b.shape for b in calibration_inputs(images, QuantizeConfig(), session.metadata)}
    assert shapes == {(1, 40, 56, 3)}
    report = quantize_model(path, images, tmp_path / "fixed.int8.onnx", QuantizeConfig(floor=0.0))
    assert (tmp_path / "fixed.int8.onnx").is_file() and report.fidelity.images == 3


def _images(*sizes: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_calibration_and_fidelity_use_the_same_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both shrink to max_side: the fidelity check runs the very shapes calibration saw."""
    model = channel_model(tmp_path / "m.onnx", channels=3)  # records no input size
    images = _images((40, 60), (30, 20))
    config = QuantizeConfig(max_side=24, floor=0.0, tta=TTAConfig((1.0, 2.0), True))
    assert [i.shape for i in sized_images(images, config)] == [(16, 24, 3), (24, 16, 3)]
    calibrated = {b.shape[1:3] for b in calibration_inputs(images, config)}
    assert calibrated == {(16, 24), (32, 48), (24, 16), (48, 32)}
    seen: set[tuple[int, ...]] = set()
    run = CamSession.run

    def recording(self: CamSession, batch: np.ndarray, *args: Any) -> Any:
        seen.add(batch.shape[1:3])
        return run(self, batch, *args)

    monkeypatch.setattr(CamSession, "run", recording)
    report = quantize_model(model, images, tmp_path / "q.onnx", config)
    assert seen == calibrated  # the float and the int8 model, during the fidelity check
    assert report.fidelity.images == 2 and report.calibration_inputs == 2 * 4


def test_below_the_floor_is_a_fidelity_error(tmp_path: Path) -> None:
    """Not an export error: its own class, one line through the CLI, nothing written."""
    model = channel_model(tmp_path / "m.onnx", channels=3)
    images = _images((24, 32), (32, 32))
    out = tmp_path / "q.onnx"
    with pytest.raises(FidelityError, match=r"cosine [01]\.\d{4} < 1\.0\); nothing was written"):
        quantize_model(model, images, out, QuantizeConfig(floor=1.0))
    assert not issubclass(FidelityError, ExportError) and issubclass(FidelityError, CamRtError)
    assert not out.exists() and not list(tmp_path.glob(".cam-rt-*.tmp"))
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
    args = ["quantize", str(model), "--calibration", str(folder), "-o", str(out), "--floor", "1"]
    refused = CliRunner().invoke(get_app(), args)
    lines = [line for line in refused.output.splitlines() if "fidelity floor" in line]
    assert refused.exit_code == 1 and len(lines) == 1 and lines[0].endswith("write it anyway")
    assert not out.exists()


def test_the_report_names_the_written_file(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=2)
    out = tmp_path / "sub" / "q.onnx"
    report = quantize_model(model, _images((20, 20)), out, QuantizeConfig(floor=0.0, tta=None))
    assert report_dict(report)["path"] == str(out) and "written" not in report_dict(report)
    assert CamSession(out).class_names == CamSession(model).class_names


def test_default_tta_is_tta_configs_own() -> None:
    (tta,) = [f for f in dataclasses.fields(QuantizeConfig) if f.name == "tta"]
    assert tta.default_factory is TTAConfig and QuantizeConfig().tta == TTAConfig()


def test_calibration_skips_unreadable_images_and_says_which(tmp_path: Path) -> None:
    """One bad image does not stop quantize: it is named and the next image is taken."""
    for name, image in zip(
        ("a.png", "c.png", "d.png"), _images((8, 8), (9, 9), (10, 10)), strict=True
    ):
        Image.fromarray(image).save(tmp_path / name)
    (tmp_path / "b.png").write_bytes(b"not an image")
    lines: list[str] = []
    images = load_calibration(tmp_path, 2, lines.append)
    assert [i.shape[:2] for i in images] == [(8, 8), (9, 9)]
    assert lines == [
        f"skipped a calibration image: {tmp_path / 'b.png'} is not an image Pillow can read"
    ]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        load_calibration(bad, 4)
    assert str(info.value) == (
        f"no calibration image in {bad} could be read (1 tried, first: {bad / 'x.png'} is empty "
        "(0 bytes)): give a folder of readable images"
    )


def test_quantize_writes_only_regular_files(tmp_path: Path) -> None:
    """A FIFO at -o is refused before any work (and left as it was); a symlink is written
    through; a 255-byte file name works (the temporary's name is short)."""
    model = channel_model(tmp_path / "m.onnx", channels=2)
    images = _images((20, 20))
    config = QuantizeConfig(floor=0.0, tta=None)
    fifo = tmp_path / "q.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        quantize_model(model, images, fifo, config)
    assert str(info.value) == (
        f"output {fifo} is a FIFO (named pipe): cam-rt replaces only regular files; give the "
        "path of a file"
    )
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "real").mkdir()
    link = tmp_path / "link.onnx"
    link.symlink_to(tmp_path / "real" / "q.onnx")
    quantize_model(model, images, link, config)
    assert link.is_symlink() and CamSession(tmp_path / "real" / "q.onnx").class_names
    long = tmp_path / ("n" * 250 + ".onnx")
    quantize_model(model, images, long, config)
    assert long.is_file() and not list(tmp_path.rglob(".cam-rt-*"))
