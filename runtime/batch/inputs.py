"""The discover step of a run: input files and their output names, and per-image labels.

An output name is the input's path below the deepest folder common to all inputs, '/'-separated,
without its extension (``a/x.png`` -> ``a/x``). Names never collide, also not in case alone:
the outputs of ``A.png`` and ``a.png`` would be one file on macOS and Windows.

``--shard I/N`` (:func:`in_shard`) splits the inputs into N parts by a stable hash of each
name, so the part an image is in does not depend on the machine, the Python version or which
other images were found.
"""

from __future__ import annotations

import glob
import json
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from ..errors import ConfigError, InputError
from ..explain import Label
from .io import IMAGE_SUFFIXES

__all__ = [
    "InputItem",
    "check_shard",
    "discover_inputs",
    "in_shard",
    "labels_for",
    "load_labels",
    "output_names",
    "parse_shard",
]


class InputItem:
    """An input file and its output name (relative path without extension, '/'-separated).

    Immutable. The path is held as a string and made a :class:`~pathlib.Path` when asked for:
    a run holds one item per input, and a string is a tenth of a Path's memory.
    """

    __slots__ = ("_file", "name")
    _file: str
    name: str

    def __init__(self, path: str | Path, name: str) -> None:
        object.__setattr__(self, "_file", os.fspath(path))
        object.__setattr__(self, "name", name)

    @property
    def path(self) -> Path:
        return Path(self._file)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"InputItem is immutable: cannot set {key}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputItem):
            return NotImplemented
        return (self._file, self.name) == (other._file, other.name)

    def __hash__(self) -> int:
        return hash((self._file, self.name))

    def __repr__(self) -> str:
        return f"InputItem(path={self._file!r}, name={self.name!r})"


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def _sorted(paths: list[str]) -> list[str]:
    """In :class:`~pathlib.Path` order, component by component (the separator made the
    smallest character)."""
    return sorted(paths, key=lambda p: p.replace(os.sep, "\0"))


def _images_in(raw: str | Path) -> list[str]:
    """The image files of one input argument: a file, a folder (recursive; links to folders
    are not followed) or a glob, as strings (a folder may hold millions)."""
    text = str(raw)
    path = Path(text)
    if path.is_dir():
        found = [
            os.path.join(folder, name)
            for folder, _, names in os.walk(str(path))
            for name in names
            if _is_image(name)
        ]
        return _sorted([f for f in found if os.path.isfile(f)])
    if path.is_file():
        return [str(path)]
    if glob.has_magic(text):
        found = glob.glob(text, recursive=True)
        return _sorted([str(Path(p)) for p in found if _is_image(p) and os.path.isfile(p)])
    raise InputError(f"input '{text}' does not exist: pass image files, folders or globs")


def _under(path: str, folders: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def discover_inputs(inputs: Sequence[str | Path], exclude: Sequence[Path] = ()) -> list[InputItem]:
    """Files, folders (recursive) and globs -> items with collision-free output names.

    Names keep the folder structure below the deepest folder common to all inputs, so
    ``a/x.png`` and ``b/x.png`` become ``a/x`` and ``b/x``; see :func:`output_names` for names
    that would collide. A file given twice (or through a link) is read once; files under an
    ``exclude`` folder (the output folder) are left out, so outputs are never read back.
    """
    excluded = [os.path.realpath(e) for e in exclude]
    seen: set[str] = set()
    unique: list[str] = []
    for raw in inputs:
        for f in _images_in(raw):
            real = os.path.realpath(f)
            if real in seen or _under(real, excluded):
                continue
            seen.add(real)
            unique.append(os.path.abspath(f))  # names follow the path given, not link targets
    del seen
    if not unique:
        raise InputError(
            "no images found in the inputs (looked for " + ", ".join(IMAGE_SUFFIXES) + ")"
        )
    root = os.path.commonpath([os.path.dirname(p) for p in unique])
    start = len(root.rstrip(os.sep)) + 1
    relative = [p[start:].replace(os.sep, "/") for p in unique]
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


def _shard_error(text: str) -> ConfigError:
    return ConfigError(
        f"--shard {text} is not I/N with 1 <= I <= N: e.g. --shard 1/4 (the first of 4 parts)"
    )


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    """``shard`` (I, N) if 1 <= I <= N; else ConfigError."""
    index, count = shard
    valid = all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
    if not valid or not 1 <= index <= count:
        raise _shard_error(f"{index}/{count}")
    return shard


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); ConfigError unless 1 <= I <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise _shard_error(repr(text))
    return int(match[1]), int(match[2])


def in_shard(name: str, shard: tuple[int, int]) -> bool:
    """Whether the input named ``name`` is in part I of N (CRC-32 of the name, modulo N)."""
    index, count = shard
    return zlib.crc32(name.encode("utf-8", "surrogateescape")) % count == index - 1
