"""Class-name lists that repeat names (ImageNet-1k's two "crane"), and lookups by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cam_rt.runtime import (
    CamSession,
    ClassSelection,
    ConfigError,
    ExplainConfig,
    Explainer,
    duplicate_names,
    resolve_class_names,
)
from cam_rt.runtime.classes import class_index, lookup_class
from cam_rt.runtime.cli import get_app
from tests.onnx_models import channel_model

NAMES = ("crane", "dog", "crane", "maillot", "maillot", "maillot")
AMBIGUOUS = "class 'crane' is ambiguous: ids 0 and 2 have that name; give the id"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return channel_model(tmp_path / "m.onnx", channels=3, class_names=NAMES[:3])


def test_duplicate_names_each_once_in_first_seen_order() -> None:
    assert duplicate_names(NAMES) == ("crane", "maillot")
    assert duplicate_names(("a", "b")) == ()
    assert duplicate_names(()) == ()


def test_class_file_keeps_repeats(tmp_path: Path) -> None:
    path = tmp_path / "imagenet.txt"
    path.write_text("\n".join(NAMES) + "\n")
    assert resolve_class_names(str(path)) == NAMES


def test_lookup_by_name() -> None:
    index = class_index(NAMES)
    assert index == {"crane": (0, 2), "dog": (1,), "maillot": (3, 4, 5)}
    assert lookup_class("dog", index) == 1
    with pytest.raises(ConfigError, match=f"^{AMBIGUOUS}$"):
        lookup_class("crane", index)
    with pytest.raises(ConfigError, match="class 'maillot' is ambiguous: ids 3, 4 and 5 have"):
        lookup_class("maillot", index)
    with pytest.raises(ConfigError, match=r"class 'crain' is not one of .*\(closest: crane"):
        lookup_class("crain", index)


def test_explainer_refuses_an_ambiguous_name_and_takes_ids(model: Path) -> None:
    session = CamSession(model)
    explainer = Explainer(session)
    assert explainer.resolve_labels(["dog", 2, 0, 2]) == (1, 2, 0)
    with pytest.raises(ConfigError, match=AMBIGUOUS):
        explainer.resolve_labels(["crane"])
    with pytest.raises(ConfigError, match=AMBIGUOUS):  # --classes crane, before any image
        Explainer(session, ExplainConfig(classes=ClassSelection.parse("dog,crane")))
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 2] = 255
    (result,) = explainer.explain(image, labels=[[2]])
    assert (result.class_ids, result.class_names) == ((2,), ("crane",))


def test_cli_warns_once_and_refuses_an_ambiguous_name(tmp_path: Path, model: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("x", "y"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{name}.png")
    base = ["run", str(model), str(folder), "-o", str(tmp_path / "o"), "-q"]
    ok = CliRunner().invoke(get_app(), [*base, "--classes", "2,dog"])
    assert ok.exit_code == 0, ok.output
    warnings = [line for line in ok.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"cam-rt: warning: {model} repeats class names (crane): select those classes by id"
    ]
    bad = CliRunner().invoke(get_app(), [*base, "--classes", "crane"])
    assert bad.exit_code == 1
    assert bad.stderr.splitlines()[-1] == f"cam-rt: error: {AMBIGUOUS}"
    (tmp_path / "labels.txt").write_text("x crane\ny 0\n")
    labels = CliRunner().invoke(get_app(), [*base, "--labels", str(tmp_path / "labels.txt")])
    assert labels.exit_code == 1 and AMBIGUOUS in labels.stderr
