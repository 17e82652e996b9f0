"""Lazy imports of the export-side heavy packages, with cam-rt's own error when missing.

Nothing here runs at import time; call the functions from inside the code that needs them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
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
    """TensorFlow, without its start-up chatter on stderr.

    TensorFlow's C++ start-up writes CUDA probes to file descriptor 2 before its log level
    applies; those lines are captured and shown only if the import fails.
    """
    if "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_fd2() as captured:
        try:
            tf: ModuleType = import_optional("tensorflow", "tensorflow", "exporting a Keras model")
            tf.config.list_physical_devices()  # device probing (cuInit) happens here, quietly
        except BaseException:
            captured.append(True)
            raise
    return tf


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[list[bool]]:
    """Send fd 2 to a temporary file; replay it if the body flagged a failure."""
    failed: list[bool] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield failed
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield failed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))


def import_keras() -> ModuleType:
    """Keras 3 on the TensorFlow backend (the export traces TensorFlow graphs)."""
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
