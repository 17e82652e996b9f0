"""Class-name lists cam-rt knows by name, and lookups of classes by name.

Lists may repeat a name (ImageNet-1k has two "crane" and two "maillot"): the names are kept as
given, :func:`duplicate_names` says which repeat, and a lookup by a repeated name is refused
(:func:`class_index`) since only an id tells the classes apart.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError, InputError

__all__ = ["VOC_CLASSES", "class_index", "duplicate_names", "lookup_class", "resolve_class_names"]

#: The 20 Pascal VOC object classes in the usual order (index 0 here is VOC label 1;
#: label 0 is the background, which a classifier does not predict).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

_BUILTIN = {"voc": VOC_CLASSES}


def resolve_class_names(spec: str) -> tuple[str, ...]:
    """Turn ``voc`` or the path of a text file (one name per line) into class names."""
    if spec.lower() in _BUILTIN:
        return _BUILTIN[spec.lower()]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"classes '{spec}' is neither a known list ({', '.join(_BUILTIN)}) nor a file: "
            "pass 'voc' or a text file with one class name per line"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read class names from {path}: {exc}") from exc
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise InputError(f"class-name file {path} has no names: write one class name per line")
    return names


def duplicate_names(names: Sequence[str]) -> tuple[str, ...]:
    """The names that occur more than once in ``names``, each once, in first-seen order."""
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for name in names:
        if name in seen:
            repeated[name] = None
        seen.add(name)
    return tuple(repeated)


def class_index(names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Every name -> the ids that have it (one id, or several for a repeated name)."""
    index: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        index.setdefault(name, []).append(i)
    return {name: tuple(ids) for name, ids in index.items()}


def lookup_class(name: str, index: dict[str, tuple[int, ...]]) -> int:
    """The id of class ``name`` in ``index`` (of :func:`class_index`); ConfigError if the name
    is unknown or ambiguous (a repeated name), naming the ids it could mean."""
    ids = index.get(name)
    if ids is None:
        close = difflib.get_close_matches(name, list(index), n=3)
        hint = f" (closest: {', '.join(close)})" if close else ""
        raise ConfigError(
            f"class '{name}' is not one of the model's classes{hint}: see 'cam-rt info' for "
            "the names"
        )
    if len(ids) > 1:
        listed = ", ".join(str(i) for i in ids[:-1]) + f" and {ids[-1]}"
        raise ConfigError(f"class '{name}' is ambiguous: ids {listed} have that name; give the id")
    return ids[0]
