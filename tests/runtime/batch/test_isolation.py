"""One bad image never takes a run down (issue #15): any exception while decoding, explaining,
rendering or writing one image is that image's error; a fuzzed corpus of every format goes
through a real ``cam-rt run`` without a traceback."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime import CamSession, ClassSelection, ExplainConfig, Explainer
from cam_rt.runtime.batch import runner as runner_module
from cam_rt.runtime.batch import steps as steps_module
from cam_rt.runtime.batch.inputs import discover_inputs
from cam_rt.runtime.batch.io import IMAGE_SUFFIXES
from cam_rt.runtime.batch.runner import RunConfig, Runner
from tests.onnx_models import channel_model
from tests.runtime.batch.runs import cam_rt, lines, make_images


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    return channel_model(path, channels=3, offset=0.4, class_names=("red", "green", "blue"))


def _sources(rng: np.random.Generator) -> dict[str, bytes]:
    """One small image in each format (the JPEG with an EXIF block)."""
    im = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "cam-rt"  # Make
    out = {}
    for suffix, fmt, kwargs in (
        ("png", "PNG", {}),
        ("jpg", "JPEG", {"exif": exif.tobytes()}),
        ("webp", "WEBP", {}),
        ("tif", "TIFF", {}),
        ("bmp", "BMP", {}),
        ("gif", "GIF", {}),
    ):
        buf = io.BytesIO()
        (im.convert("P") if fmt == "GIF" else im).save(buf, fmt, **kwargs)
        out[suffix] = buf.getvalue()
    return out


def _mutant(data: bytes, rng: np.random.Generator, kind: int) -> bytes:
    b = bytearray(data)
    if kind == 0:  # truncated
        return bytes(b[: int(rng.integers(1, len(b)))])
    if kind == 1:  # header bytes replaced
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, min(100, len(b))))] = int(rng.integers(0, 256))
    elif kind == 2:  # bits flipped anywhere
        for _ in range(int(rng.integers(1, 30))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
    else:  # bytes cut out or inserted
        pos, n = int(rng.integers(0, len(b))), int(rng.integers(1, 50))
        if rng.random() < 0.5:
            del b[pos : pos + n]
        else:
            b[pos:pos] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(b)


def test_a_fuzzed_corpus_runs_without_a_traceback(tmp_path: Path, model: Path) -> None:
    """360 byte-flipped, cut and spliced PNG, JPEG+EXIF, WebP, TIFF, BMP and GIF files (seed
    20): every file gets a line, done or failed, and the run exits 0 or 2."""
    rng = np.random.default_rng(20)
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for suffix, data in _sources(rng).items():
        # A GIF is read by its content when .gif is not an input suffix.
        name_suffix = suffix if f".{suffix}" in IMAGE_SUFFIXES else "png"
        for i in range(60):
            mutant = _mutant(data, rng, i % 4)
            (folder / f"{suffix}{i:02d}.{name_suffix}").write_bytes(mutant)
    out = tmp_path / "out"
    proc = cam_rt("run", model, folder, "-o", out, "-q", "--max-pixels", "2000000", timeout=900)
    assert proc.returncode in (0, 2), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    records = lines(out)
    assert sorted(r["name"] for r in records) == sorted(p.stem for p in folder.iterdir())
    failed = [r for r in records if "error" in r]
    assert failed and all(r["error"] and "\n" not in r["error"] for r in failed)
    for record in records:
        if "error" not in record:
            assert all((out / f).is_file() for f in record["outputs"])


def _failing_for(name: str, exc: BaseException, real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, raising ``exc`` when its first argument is (or names) ``name``."""

    def step(first: Any, *args: Any, **kwargs: Any) -> Any:
        if name in str(first):
            raise exc
        return real(first, *args, **kwargs)

    return step


@pytest.mark.parametrize(
    ("step", "exc", "message"),
    [
        ("render", KeyError("class_id"), "KeyError"),
        ("render", MemoryError(), "not enough memory"),
        ("decode", struct.error("unpack requires a buffer of 4 bytes"), "struct.error"),
        ("decode", EOFError(), "EOFError"),
    ],
)
def test_any_error_of_one_image_fails_that_image_only(
    tmp_path: Path,
    model: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    exc: BaseException,
    message: str,
) -> None:
    make_images(tmp_path / "in", 5)
    if step == "render":
        monkeypatch.setattr(
            runner_module, "render", _failing_for("img002", exc, runner_module.render)
        )
    else:
        read = _failing_for("img002", exc, steps_module.read_image)
        monkeypatch.setattr(steps_module, "read_image", read)
    explainer = Explainer(CamSession(model), ExplainConfig(classes=ClassSelection("all")))
    summary = Runner(explainer, tmp_path / "out", RunConfig(save=("overlay",))).run(
        discover_inputs([tmp_path / "in"])
    )
    assert (summary.done, summary.failed, summary.exit_code) == (4, 1, 2)
    records = {r["name"]: r for r in lines(tmp_path / "out")}
    assert message in records["img002"]["error"] and "outputs" not in records["img002"]
    assert all("outputs" in records[f"img00{i}"] for i in (0, 1, 3, 4))


def test_an_explain_error_of_one_image_fails_that_image_only(tmp_path: Path, model: Path) -> None:
    """The explainer raises ValueError (not a cam-rt error) for 1-pixel-wide images: the batch
    is explained again image by image and only that image fails."""
    make_images(tmp_path / "in", 4)
    Image.fromarray(np.zeros((8, 1, 3), np.uint8)).save(tmp_path / "in" / "img001.png")
    explainer = Explainer(CamSession(model), ExplainConfig(batch_size=4))
    explain = explainer.explain

    def picky(images: Any, **kwargs: Any) -> Any:
        batch = images if isinstance(images, list) else [images]
        if any(image.shape[1] == 1 for image in batch):
            raise ValueError("cannot explain a 1-pixel-wide image")
        return explain(images, **kwargs)

    explainer.explain = picky  # type: ignore[method-assign]
    summary = Runner(explainer, tmp_path / "out").run(discover_inputs([tmp_path / "in"]))
    assert (summary.done, summary.failed) == (3, 1)
    (failed,) = [r for r in lines(tmp_path / "out") if "error" in r]
    assert failed["name"] == "img001" and "ValueError" in failed["error"]
