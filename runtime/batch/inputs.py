"""The discover step of a run: input files and their output names, and per-image labels.

An output name is the input's path below the deepest folder common to all inputs, '/'-separated,
without its extension (``a/x.png`` -> ``a/x``). Names never collide, also not in case alone:
the outputs of ``A.png`` and ``a.png`` would be one file on macOS and Windows.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import InputError
from ..explain import Label
from .io import IMAGE_SUFFIXES

__all__ = ["InputItem", "discover_inputs", "labels_for", "load_labels", "output_names"]


@dataclass(frozen=True, slots=True)
class InputItem:
    """An input file and its output name (relative path without extension, '/'-separated)."""

    path: Path
    name: str


def _images_in(raw: str | Path) -> list[Path]:
    """The image files of one input argument: a file, a folder (recursive) or a glob."""
    text = str(raw)
    path = Path(text)
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    if path.is_file():
        return [path]
    if glob.has_magic(text):
        return sorted(
            Path(p)
            for p in glob.glob(text, recursive=True)
            if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES
        )
    raise InputError(f"input '{text}' does not exist: pass image files, folders or globs")


def discover_inputs(inputs: Sequence[str | Path], exclude: Sequence[Path] = ()) -> list[InputItem]:
    """Files, folders (recursive) and globs -> items with collision-free output names.

    Names keep the folder structure below the deepest folder common to all inputs, so
    ``a/x.png`` and ``b/x.png`` become ``a/x`` and ``b/x``; see :func:`output_names` for names
    that would collide. A file given twice (or through a link) is read once; files under an
    ``exclude`` folder (the output folder) are left out, so outputs are never read back.
    """
    files = [f for raw in inputs for f in _images_in(raw)]
    excluded = [e.resolve() for e in exclude]
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in files:
        real = f.resolve()
        if real in seen or any(real.is_relative_to(e) for e in excluded):
            continue
        seen.add(real)
        unique.append(Path(os.path.abspath(f)))  # names follow the path given, not link targets
    if not unique:
        raise InputError(
            "no images found in the inputs (looked for " + ", ".join(IMAGE_SUFFIXES) + ")"
        )
    root = Path(os.path.commonpath([str(p.parent) for p in unique]))
    relative = [p.relative_to(root).as_posix() for p in unique]
    return [InputItem(p, n) for p, n in zip(unique, output_names(relative), strict=True)]


def _clashing(names: Sequence[str]) -> list[int]:
    """Indices of the names another name equals when case is ignored."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n.casefold()] = counts.get(n.casefold(), 0) + 1
    return [i for i, n in enumerate(names) if counts[n.casefold()] > 1]


def output_names(relative: Sequence[str]) -> list[str]:
    """Output names of distinct relative file paths ('/'-separated), unique ignoring case.

    A path's name is the path without its extension; names that would collide (``x.jpg`` and
    ``x.png``, or ``A.png`` and ``a.png``) keep their extension, until all differ. Paths that
    still differ only in case (``A.png`` and ``a.png``) are numbered after the first: ``A.png``
    and ``a.png~2``.
    """
    names = [PurePosixPath(r).with_suffix("").as_posix() for r in relative]
    while True:
        clashes = _clashing(names)
        moved = [i for i in clashes if names[i] != relative[i]]
        if not moved:
            break
        for i in moved:  # a colliding name becomes the full relative path
            names[i] = relative[i]
    taken = {n.casefold() for n in names}
    first: set[str] = set()
    for i in clashes:
        key = names[i].casefold()
        if key not in first:
            first.add(key)
            continue
        number = 2
        while f"{names[i]}~{number}".casefold() in taken:
            number += 1
        names[i] = f"{names[i]}~{number}"
        taken.add(names[i].casefold())
    return names


def load_labels(path: Path) -> dict[str, list[Label]]:
    """Per-image labels: JSON ``{"name": ["cat", 7]}`` or text lines ``name label label``.

    ``name`` is matched against an image's output name, its file name or its stem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {path}: {exc}") from exc
    out: dict[str, list[Label]] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"labels file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"labels file {path} must hold an object {{name: [labels]}}")
        for key, value in data.items():
            values = value if isinstance(value, list) else [value]
            out[str(key)] = [v if isinstance(v, int) else str(v) for v in values]
        return out
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        out[parts[0]] = [int(v) if v.isdigit() else v for v in parts[1:]]
        if not parts[1:]:
            raise InputError(f"labels file {path} line {number} names no labels for {parts[0]}")
    return out


def labels_for(
    item: InputItem, labels: Mapping[str, Sequence[Label]] | None
) -> Sequence[Label] | None:
    """The labels of ``item`` (by output name, file name or stem); None without a labels file.
    InputError if the file has no entry for it."""
    if labels is None:
        return None
    for key in (item.name, item.path.name, item.path.stem):
        if key in labels:
            return labels[key]
    raise InputError(f"the labels file has no entry for {item.name}")
