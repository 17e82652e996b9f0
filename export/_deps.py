"""Lazy imports of the export-side heavy packages, with cam-rt's own error when missing.

Nothing here runs at import time; call the functions from inside the code that needs them.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from cam_rt.runtime.errors import ExportError, MissingDependencyError

__all__ = ["import_keras", "import_optional", "import_tensorflow", "import_tf_keras"]


def import_optional(module: str, package: str, purpose: str, extra: str = "export") -> Any:
    """Import ``module`` or raise MissingDependencyError naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, extra, purpose) from exc


def import_tensorflow() -> ModuleType:
    """TensorFlow, quiet and on the CPU-visible defaults."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf: ModuleType = import_optional("tensorflow", "tensorflow", "exporting a Keras model")
    return tf


def import_keras() -> ModuleType:
    """Keras 3 on the TensorFlow backend (the export traces TensorFlow graphs)."""
    import sys

    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import_tensorflow()
    keras: ModuleType = import_optional("keras", "keras", "exporting a Keras model")
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ExportError(
            f"Keras is running on the '{backend}' backend; the export needs TensorFlow: "
            "set KERAS_BACKEND=tensorflow before Keras is first imported"
        )
    return keras


def import_tf_keras() -> ModuleType:
    """tf_keras (Keras 2), for legacy .h5 files and SavedModels written by Keras 2."""
    import_tensorflow()
    tf_keras: ModuleType = import_optional(
        "tf_keras", "tf-keras", "loading a Keras 2 (.h5 / SavedModel) model"
    )
    return tf_keras
