"""`cam-rt run` (cli/run.py): CliRunner for options, real processes for the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cam_rt.runtime.cli import get_app
from tests.onnx_models import channel_model

SCRIPT = Path(sys.executable).with_name("cam-rt")


def _run_cmd(model: Path, inputs: Path, *options: str) -> list[str]:
    """The installed ``cam-rt run MODEL INPUTS OPTIONS...`` command line."""
    return [str(SCRIPT), "run", str(model), str(inputs), *options]


runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    return channel_model(path, channels=3, offset=0.4, class_names=("red", "green", "blue"))


def _mixed_folder(folder: Path) -> dict[str, str]:
    """Good, corrupt, empty, grayscale, RGBA, 16-bit and palette images; name -> kind."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (30, 30, 4), dtype=np.uint8)).save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (30, 30), dtype=np.uint16)).save(folder / "deep.png")
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).convert("P").save(
        folder / "pal.png"
    )
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    data = (folder / "rgb.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 3])
    return {
        "rgb": "ok",
        "photo": "ok",
        "gray": "ok",
        "rgba": "ok",
        "deep": "ok",
        "pal": "ok",
        "empty": "bad",
        "text": "bad",
        "cut": "bad",
    }


def test_mixed_folder_subprocess(tmp_path: Path, model: Path) -> None:
    kinds = _mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    proc = subprocess.run(
        _run_cmd(
            model,
            tmp_path / "in",
            *("-o", str(out), "--tta", "--save", "overlay,heatmap,maps,seeds,boxes"),
            *("--classes", "all", "--grid", str(out / "grid.png")),
        ),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr  # some inputs failed
    assert "failed: empty:" in proc.stderr and "is empty (0 bytes)" in proc.stderr
    assert "failed: cut:" in proc.stderr and "failed: text:" in proc.stderr
    assert proc.stderr.count("converting grayscale to RGB") == 1
    assert "6 written, 0 skipped, 3 failed of 9" in proc.stderr
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["name"] for r in lines) == sorted(kinds)
    for record in lines:
        if kinds[record["name"]] == "bad":
            assert "error" in record and "outputs" not in record
            assert not list(out.glob(record["name"] + ".*"))
        else:
            assert record["outputs"] == [
                f"{record['name']}{s}"
                for s in (".overlay.png", ".heatmap.png", ".maps.npz", ".seeds.png", ".boxes.json")
            ] + [f"{record['name']}.boxes.png"]
            assert [c["name"] for c in record["classes"]] == ["red", "green", "blue"]
    maps = np.load(out / "rgb.maps.npz")
    assert maps["maps"].dtype == np.float16 and maps["maps"].shape == (40, 56, 3)
    assert maps["class_names"].tolist() == ["red", "green", "blue"]
    assert float(maps["maps"].min()) >= 0 and float(maps["maps"].max()) <= 1
    with Image.open(out / "deep.seeds.png") as seeds:
        assert seeds.mode == "P" and seeds.size == (30, 30)
        assert set(np.unique(np.asarray(seeds))) <= {0, 1, 2, 3}
    boxes = json.loads((out / "rgb.boxes.json").read_text())
    assert [b["class_name"] for b in boxes["boxes"]] == ["red", "green", "blue"]
    with Image.open(out / "grid.png") as picture:
        assert picture.size[0] > 0
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp or journal files


def test_all_good_exit_zero_and_quiet(tmp_path: Path, model: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "x.png")
    result = runner.invoke(
        get_app(), ["run", str(model), str(folder), "-o", str(tmp_path / "o"), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert (tmp_path / "o" / "x.overlay.png").is_file() and (
        tmp_path / "o" / "x.maps.npz"
    ).is_file()


def test_max_pixels_bounds_the_tta_inputs(tmp_path: Path, model: Path) -> None:
    """--max-pixels reaches the explainer: a TTA scale that would make a 40x40 image
    1200x1200 is refused for that image (recorded, exit 2) before any resize."""
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "x.png")
    out = tmp_path / "o"
    args = ["run", str(model), str(tmp_path / "x.png"), "-o", str(out), "-q", "--tta"]
    result = runner.invoke(get_app(), [*args, "--scales", "1,30", "--max-pixels", "100000"])
    assert result.exit_code == 2, result.output
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert "--max-pixels" in record["error"], record
    ok = runner.invoke(
        get_app(), [*args, "--scales", "1,2", "--max-pixels", "100000", "-o", str(tmp_path / "p")]
    )
    assert ok.exit_code == 0, ok.output


def test_same_names_in_two_folders(tmp_path: Path, model: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / sub / "x.png")
    out = tmp_path / "out"
    result = runner.invoke(
        get_app(),
        [
            "run",
            str(model),
            str(tmp_path / "a" / "x.png"),
            str(tmp_path / "b" / "x.png"),
            "-o",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0
    assert (out / "a" / "x.overlay.png").is_file() and (out / "b" / "x.overlay.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--save", "overlay,pdf"], "--save pdf is unknown"),
        (["--tta", "--scales", "0.5,x"], "--scales '0.5,x' is not a list of numbers"),
        (["--tta", "--scales", "0,1"], "scale 0.0 is invalid"),
        (["--tta", "--tta-mode", "best"], "TTA mode 'best' is unknown"),
        (["--classes", "purple"], "class 'purple' is not one of the model's classes"),
        (["--device", "tpu"], "execution provider 'tpu' is unknown"),
        (["--bg-threshold", "3"], "--bg-threshold 3.0 is outside"),
    ],
)
def test_bad_options_exit_one(tmp_path: Path, model: Path, args: list[str], message: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "x.png")
    result = runner.invoke(
        get_app(), ["run", str(model), str(folder), "-o", str(tmp_path / "o"), *args]
    )
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nothing_can_run(tmp_path: Path, model: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "x.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (
            [str(tmp_path / "missing.onnx"), str(folder), "-o", str(tmp_path / "o")],
            "does not exist",
        ),
        ([str(model), str(tmp_path / "none"), "-o", str(tmp_path / "o")], "input"),
        ([str(model), str(folder), "-o", str(blocker / "sub")], "is not writable"),
    ]
    for args, message in cases:
        result = runner.invoke(get_app(), ["run", *args])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.stderr


def test_labels_file(tmp_path: Path, model: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("x", "y"):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / f"{name}.png")
    (tmp_path / "labels.txt").write_text("x green\n")
    out = tmp_path / "o"
    result = runner.invoke(
        get_app(),
        [
            "run",
            str(model),
            str(folder),
            "-o",
            str(out),
            "--labels",
            str(tmp_path / "labels.txt"),
            "-q",
        ],
    )
    assert result.exit_code == 2  # y has no labels
    records = {
        r["name"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
    }
    assert [c["name"] for c in records["x"]["classes"]] == ["green"]
    assert "no entry for y" in records["y"]["error"]


def _many_images(folder: Path, n: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(
            folder / f"img{i:03d}.png"
        )


def _snapshot(out: Path) -> dict[str, object]:
    files: dict[str, object] = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.suffix == ".npz":
            with np.load(path) as data:
                files[rel] = {k: data[k].tolist() for k in data.files}
        elif path.name == "results.jsonl":
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            for line in lines:
                line.pop("timings", None)
            files[rel] = lines
        else:
            files[rel] = path.read_bytes()
    return files


def test_interrupt_then_resume_matches_uninterrupted(tmp_path: Path, model: Path) -> None:
    _many_images(tmp_path / "in", 150)
    base = _run_cmd(
        model, tmp_path / "in", "--tta", "--batch-size", "2", "--save", "overlay,maps,seeds,boxes"
    )
    full = subprocess.run(
        [*base, "-o", str(tmp_path / "full"), "-q", "--grid", str(tmp_path / "full" / "grid.png")],
        capture_output=True,
        text=True,
    )
    assert full.returncode == 0, full.stderr

    out = tmp_path / "resumed"
    grid = ["--grid", str(out / "grid.png")]
    proc = subprocess.Popen([*base, "-o", str(out), "-q", *grid], stderr=subprocess.PIPE, text=True)
    journal = out / ".results.journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.is_file() and journal.read_text().count("\n") >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    done = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert 5 <= len(done) < 150
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no partial/temp files
    for record in done:  # every recorded image has all its files
        assert all((out / f).is_file() for f in record["outputs"])

    again = subprocess.run(
        [*base, "-o", str(out), "--skip-existing", *grid], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert f"skipping {len(done)} images" in again.stderr
    _same_outputs(_snapshot(out), _snapshot(tmp_path / "full"))


def _same_outputs(got: dict[str, object], want: dict[str, object]) -> None:
    """Equal files; the .npz arrays equal to float32 rounding (ONNX Runtime's kernels give
    results 1e-7 apart when an image's passes share a batch with other images' or not, and a
    resumed run groups the remaining images differently)."""
    assert got.keys() == want.keys()
    for name, value in want.items():
        if name.endswith(".npz"):
            assert isinstance(value, dict) and isinstance(got[name], dict)
            for key, array in value.items():
                mine = got[name][key]  # type: ignore[index]
                if isinstance(array, list) and array and not isinstance(np.ravel(array)[0], str):
                    np.testing.assert_allclose(mine, array, rtol=0, atol=1e-6, err_msg=name)
                else:
                    assert mine == array, name
        else:
            assert got[name] == value, name


def test_sigterm_is_an_interrupt(tmp_path: Path, model: Path) -> None:
    _many_images(tmp_path / "in", 120)
    out = tmp_path / "o"
    proc = subprocess.Popen(
        _run_cmd(model, tmp_path / "in", "-o", str(out), "--tta", "--batch-size", "1", "-q"),
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = out / ".results.journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        journal.is_file() and journal.read_text().count("\n") >= 2
    ):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130


def test_run_input_size(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "m.onnx", input_size=(4, 4))
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4, 0] = 255  # red left half
    image[:, 4:, 1] = 255
    Image.fromarray(image).save(folder / "x.png")

    def red_row(*args: str) -> list[float]:
        out = tmp_path / "o" / "-".join(args)
        base = ["run", str(model), str(folder), "-o", str(out), "--classes", "all"]
        result = runner.invoke(get_app(), [*base, "--save", "maps", "-q", *args])
        assert result.exit_code == 0, result.output
        with np.load(out / "x.maps.npz") as data:
            maps = data["maps"].astype(np.float32)
        assert maps.shape == (8, 8, 2)  # at the image's resolution whatever ran
        assert np.all(maps[0] == maps[-1])
        return [float(v) for v in maps[0, :, 0]]

    # 8x8 -> 4x4 (area keeps the step), normalized, bilinear back to 8x8.
    at_model = [1, 1, 1, 0.75, 0.25, 0, 0, 0]
    assert red_row() == red_row("--input-size", "model") == red_row("--input-size", "4x4")
    assert red_row() == at_model
    assert red_row("--input-size", "image") == [1, 1, 1, 1, 0, 0, 0, 0]
    assert red_row("--input-size", "4") == at_model  # shorter side 4
    bad = runner.invoke(
        get_app(),
        ["run", str(model), str(folder), "-o", str(tmp_path / "b"), "--input-size", "big"],
    )
    assert bad.exit_code == 1
    assert bad.stderr.strip() == (
        "cam-rt: error: --input-size 'big' is not model, image, HxW or N: e.g. model, 320x480 "
        "or 448"
    )


def test_run_fixed_size_file_refuses_scales(tmp_path: Path) -> None:
    model = channel_model(tmp_path / "f.onnx", input_size=(8, 8), fixed_size=True)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "x.png")
    base = ["run", str(model), str(folder), "-o", str(tmp_path / "o"), "-q"]
    result = runner.invoke(get_app(), [*base, "--tta"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"cam-rt: error: {model} takes only 8x8 inputs (its head needs that size): TTA scales "
        "need a dynamic-size export; pass --scales 1"
    )
    assert not (tmp_path / "o" / "results.jsonl").exists()  # refused before any image
    ok = runner.invoke(get_app(), [*base, "--tta", "--scales", "1", "--save", "maps"])
    assert ok.exit_code == 0, ok.output
    with np.load(tmp_path / "o" / "x.maps.npz") as data:
        assert data["maps"].shape[:2] == (20, 30)
