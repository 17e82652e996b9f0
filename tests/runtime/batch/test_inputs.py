"""The discover step: input files and globs, output names (never colliding, not even in case),
label files and the labels of an item."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cam_rt.runtime.batch.inputs import (
    InputItem,
    discover_inputs,
    labels_for,
    load_labels,
    output_names,
)
from cam_rt.runtime.errors import InputError


def _images(folder: Path, n: int, size: tuple[int, int] = (24, 32)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            folder / f"img{i:02d}.png"
        )


def _touch(root: Path, *names: str) -> None:
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def test_discover_names_keep_structure(tmp_path: Path) -> None:
    _touch(tmp_path, "a/x.png", "b/x.png", "b/y.jpg", "b/y.png", "b/deep/z.webp", "b/notes.txt")
    items = discover_inputs([tmp_path / "a", tmp_path / "b"])
    assert [i.name for i in items] == ["a/x", "b/deep/z", "b/x", "b/y.jpg", "b/y.png"]
    items = discover_inputs([str(tmp_path / "b" / "*.png")])
    assert [i.name for i in items] == ["x", "y"]
    items = discover_inputs([tmp_path / "a" / "x.png", tmp_path / "a" / "x.png"])
    assert [i.name for i in items] == ["x"]
    with pytest.raises(InputError, match="does not exist"):
        discover_inputs([tmp_path / "nope"])
    with pytest.raises(InputError, match="no images found"):
        discover_inputs([str(tmp_path / "*.gif")])


def test_names_never_collide(tmp_path: Path) -> None:
    folder = tmp_path / "col"
    folder.mkdir()
    for name in ("x.png", "x.jpg", "x.png.jpg"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / name, format="PNG")
    names = [i.name for i in discover_inputs([folder])]
    assert len(set(names)) == 3, names


def test_names_differing_in_case_collide(tmp_path: Path) -> None:
    """macOS and Windows write A.overlay.png and a.overlay.png to one file: such names are
    told apart by their extension, or numbered when even that differs only in case."""
    _touch(tmp_path, "A.png", "a.png", "B.PNG", "b.jpg", "Sub/x.png", "sub/x.png", "c.png")
    if len(list(tmp_path.rglob("*.*"))) != 7:
        pytest.skip("this file system ignores case: A.png and a.png cannot both exist")
    names = [i.name for i in discover_inputs([tmp_path])]
    assert names == ["A.png", "B.PNG", "Sub/x.png", "a.png~2", "b.jpg", "c", "sub/x.png~2"]
    assert len({n.casefold() for n in names}) == len(names)


def test_output_names_known_answers() -> None:
    assert output_names(["x.png", "x.jpg", "x.png.jpg"]) == ["x.png", "x.jpg", "x.png.jpg"]
    assert output_names(["a/x.png", "b/x.png", "README"]) == ["a/x", "b/x", "README"]
    # an existing name is not reused by the numbering
    assert output_names(["A.png", "a.png", "a.png~2.jpg"]) == ["A.png", "a.png~3", "a.png~2"]
    assert output_names(["X.png", "x.PNG", "X.PNG"]) == ["X.png", "x.PNG~2", "X.PNG~3"]


def test_symlink_keeps_its_own_name(tmp_path: Path) -> None:
    _images(tmp_path / "a", 1)
    _images(tmp_path / "other", 1, size=(8, 8))
    os.symlink(tmp_path / "other" / "img00.png", tmp_path / "a" / "linked.png")
    names = [i.name for i in discover_inputs([tmp_path / "a"])]
    assert names == ["img00", "linked"]


def test_excluded_folder_is_never_read(tmp_path: Path) -> None:
    _touch(tmp_path, "in/x.png", "in/out/x.overlay.png")
    items = discover_inputs([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])
    assert [i.name for i in items] == ["x"]


def test_labels_files(tmp_path: Path) -> None:
    (tmp_path / "l.json").write_text('{"a/x": ["cat", 3], "y": "dog"}')
    assert load_labels(tmp_path / "l.json") == {"a/x": ["cat", 3], "y": ["dog"]}
    (tmp_path / "l.txt").write_text("# name labels\nx cat,dog\ny 4\n")
    assert load_labels(tmp_path / "l.txt") == {"x": ["cat", "dog"], "y": [4]}
    (tmp_path / "bad.txt").write_text("x\n")
    with pytest.raises(InputError, match="line 1 names no labels for x"):
        load_labels(tmp_path / "bad.txt")
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(InputError, match="must hold an object"):
        load_labels(tmp_path / "bad.json")


def test_labels_for_matches_name_file_name_or_stem(tmp_path: Path) -> None:
    item = InputItem(tmp_path / "a" / "x.png", "a/x")
    assert labels_for(item, None) is None
    assert labels_for(item, {"a/x": ["cat"], "x": ["dog"]}) == ["cat"]
    assert labels_for(item, {"x.png": [1], "x": [2]}) == [1]
    assert labels_for(item, {"x": [2]}) == [2]
    with pytest.raises(InputError, match="the labels file has no entry for a/x"):
        labels_for(item, {"y": [0]})
