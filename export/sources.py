"""Load what the user wants to export: a file, a folder, an in-memory model or a built-in name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cam_rt.runtime.errors import ConfigError, ModelLoadError

from ._deps import import_keras, import_optional, import_tf_keras

__all__ = ["BUILTINS", "LoadedModel", "load_source"]

#: Built-in architectures and their defaults (preprocessing, classes).
BUILTINS = {"resnet38d": {"preprocess": "torch", "classes": "voc"}}

Flavour = Literal["keras", "tf_keras"]


@dataclass
class LoadedModel:
    model: Any
    flavour: Flavour
    sha256: str
    description: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_dir(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def _sha256_weights(model: Any) -> str:
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def flavour_of(model: Any) -> Flavour:
    module = type(model).__module__
    if module.startswith("tf_keras") or module.startswith("tensorflow.python.keras"):
        return "tf_keras"
    if module.startswith("keras"):
        return "keras"
    # Subclasses defined by the user: look at the base classes.
    for base in type(model).__mro__:
        if base.__module__.startswith("tf_keras"):
            return "tf_keras"
        if base.__module__.startswith("keras"):
            return "keras"
    raise ConfigError(
        f"source is a {type(model).__name__}, not a Keras model: pass a keras.Model, a "
        ".keras/.h5 file, a SavedModel folder or a built-in name ({', '.join(BUILTINS)})"
    )


def load_source(
    source: Any,
    weights: str | None = None,
    num_classes: int | None = None,
) -> LoadedModel:
    """Load ``source`` (see :func:`cam_rt.export.export_model`)."""
    if not isinstance(source, (str, Path)):
        if weights is not None:
            raise ConfigError("weights apply to built-in architectures only, not to a model object")
        flavour = flavour_of(source)
        return LoadedModel(
            source, flavour, _sha256_weights(source), f"in-memory model '{source.name}'"
        )
    text = str(source)
    path = Path(text)
    if text.lower() in BUILTINS and not path.exists():
        return _load_builtin(text.lower(), weights, num_classes)
    if weights is not None:
        raise ConfigError(
            f"--weights applies to built-in architectures ({', '.join(BUILTINS)}), not to a "
            f"model file ({text}): a saved model already carries its weights"
        )
    if not path.exists():
        raise ModelLoadError(
            f"model '{text}' does not exist: pass a .keras/.h5 file, a SavedModel folder or a "
            f"built-in name ({', '.join(BUILTINS)})"
        )
    if path.is_dir():
        return _load_saved_model(path)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return _load_keras(path)
    if suffix in (".h5", ".hdf5"):
        return _load_h5(path)
    raise ModelLoadError(
        f"model file {path} has an unknown type '{suffix}': pass a .keras or .h5 file or a "
        "SavedModel folder"
    )


def _load_builtin(name: str, weights: str | None, num_classes: int | None) -> LoadedModel:
    from .resnet38d import build_resnet38d, load_resnet38d_weights

    if weights is None:
        raise ConfigError(
            f"built-in '{name}' needs --weights: a resnet38d-tf .h5 file, or 'none' for random "
            "initialisation"
        )
    classes = num_classes or 20
    if weights.lower() == "none":
        model = build_resnet38d(classes, seed=0)
        return LoadedModel(model, "keras", "random-init-seed-0", f"{name} (random weights)")
    wpath = Path(weights)
    if not wpath.is_file():
        raise ModelLoadError(f"weights file '{weights}' does not exist: pass a .h5 file or 'none'")
    model = build_resnet38d(classes)
    load_resnet38d_weights(model, wpath)
    return LoadedModel(model, "keras", sha256_file(wpath), f"{name} + {wpath.name}")


def _load_keras(path: Path) -> LoadedModel:
    keras = import_keras()
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, zipfile errors...
        text = _first_line(exc)
        hint = "is it a .keras file saved by Keras 3?"
        if any(w in text.lower() for w in ("custom", "unknown layer", "could not locate")):
            hint = (
                "register custom layers (keras.saving.register_keras_serializable) or pass the "
                "model object to cam_rt.export.export_model"
            )
        raise ModelLoadError(
            f"Keras cannot load {path} ({type(exc).__name__}: {text}): {hint}"
        ) from exc
    return LoadedModel(model, "keras", sha256_file(path), path.name)


def _load_h5(path: Path) -> LoadedModel:
    h5py = import_optional("h5py", "h5py", "reading .h5 files")
    try:
        with h5py.File(path, "r") as f:
            whole = "model_config" in f.attrs
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: not an HDF5 file ({exc})") from exc
    if not whole:
        raise ModelLoadError(
            f"{path} holds weights only (no model_config): pass it as --weights to a built-in "
            f"architecture ({', '.join(BUILTINS)}), or save the whole model (model.save)"
        )
    keras = import_keras()
    try:
        model = keras.models.load_model(path, compile=False)
        return LoadedModel(model, "keras", sha256_file(path), path.name)
    except Exception as keras_exc:
        first = keras_exc
    tf_keras = import_tf_keras()
    try:
        model = tf_keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ModelLoadError(
            f"neither Keras 3 ({_first_line(first)}) nor tf_keras ({_first_line(exc)}) can load "
            f"{path}"
        ) from exc
    return LoadedModel(model, "tf_keras", sha256_file(path), f"{path.name} (tf_keras)")


def _load_saved_model(path: Path) -> LoadedModel:
    if not (path / "saved_model.pb").is_file():
        raise ModelLoadError(
            f"folder {path} is not a SavedModel (no saved_model.pb): pass a SavedModel folder, "
            "a .keras or .h5 file"
        )
    if not (path / "keras_metadata.pb").is_file():
        raise ModelLoadError(
            f"SavedModel {path} holds no Keras model (written by model.export or "
            "tf.saved_model.save): cam-rt needs the Keras layers, export from the .keras file "
            "or a SavedModel written by tf_keras model.save"
        )
    tf_keras = import_tf_keras()
    try:
        model = tf_keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ModelLoadError(f"tf_keras cannot load SavedModel {path}: {_first_line(exc)}") from exc
    return LoadedModel(model, "tf_keras", _sha256_dir(path), f"{path.name} (SavedModel)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
