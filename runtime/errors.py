"""cam-rt's exceptions.

Every error a user can cause is one of these; anything else is a bug. The CLI catches
``CamRtError`` only, prints its message on one line and exits non-zero.

    CamRtError
    ├── ConfigError             an option or config field has a bad value
    ├── InputError              an image, array or file given to cam-rt is unusable
    ├── ModelLoadError          a model file or weights file cannot be read or does not fit
    ├── MissingDependencyError  an optional package is not installed (names the pip extra)
    ├── ProviderError           an ONNX Runtime execution provider cannot be used
    ├── ExportError             the Keras -> ONNX export failed or did not pass its check
    └── FidelityError           a converted model's maps are too far from the original's
"""

from __future__ import annotations

__all__ = [
    "CamRtError",
    "CamRtNotice",
    "ConfigError",
    "ExportError",
    "FidelityError",
    "InputError",
    "MissingDependencyError",
    "ModelLoadError",
    "ProviderError",
]


class CamRtError(Exception):
    """Base class of every error cam-rt raises on purpose."""


class ConfigError(CamRtError, ValueError):
    """An option or configuration field has a value cam-rt cannot use."""


class InputError(CamRtError, ValueError):
    """An input (image, array, file) is unusable."""


class ModelLoadError(CamRtError):
    """A model or weights file cannot be read, or does not match what is expected."""


class MissingDependencyError(CamRtError, ImportError):
    """An optional dependency is missing; the message names the pip extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed: "
            f"pip install 'cam-rt[{extra}]'"
        )


class ProviderError(CamRtError):
    """An ONNX Runtime execution provider was asked for but cannot be used."""


class ExportError(CamRtError):
    """The export failed, or the exported model did not match the Keras model."""


class FidelityError(CamRtError):
    """A converted model (e.g. the int8 file of ``cam-rt quantize``) gives maps below the
    required agreement with the original's; nothing was written."""


class CamRtNotice(UserWarning):
    """Information worth one line that is not a problem (e.g. what ``--device auto`` measured
    and chose): the CLI prints it as ``cam-rt: note: ...``, and ``-q`` silences it."""
