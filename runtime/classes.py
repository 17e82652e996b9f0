"""Class-name lists cam-rt knows by name."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, InputError

__all__ = ["VOC_CLASSES", "resolve_class_names"]

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
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"class-name file {path} repeats {', '.join(dupes)}: names must be unique")
    return names
