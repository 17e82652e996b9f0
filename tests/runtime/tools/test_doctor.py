"""``cam-rt doctor`` facts: ONNX Runtime is reached through the backend, and a broken install is
reported, not raised."""

from __future__ import annotations

import contextlib
from importlib import metadata

import pytest

from cam_rt.runtime import available_providers
from cam_rt.runtime.errors import MissingDependencyError
from cam_rt.runtime.tools import doctor


def test_environment_checks_name_the_installed_runtime_and_its_providers() -> None:
    checks = {c.name: c for c in doctor.environment_checks()}
    assert checks["providers"].level == "ok"
    assert checks["providers"].detail == ", ".join(available_providers())
    assert "CPUExecutionProvider" in checks["providers"].detail
    installed = []
    for dist in doctor.ORT_DISTRIBUTIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            installed.append(f"{dist} {metadata.version(dist)}")
    if len(installed) == 1:  # read from the distribution's metadata
        assert (checks["onnxruntime"].level, checks["onnxruntime"].detail) == ("ok", installed[0])


def test_an_onnxruntime_that_does_not_import_is_an_error_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> list[str]:
        try:
            raise ImportError("libonnxruntime.so: cannot open shared object file")
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "cpu", "running models") from exc

    monkeypatch.setattr(doctor, "available_providers", broken)
    checks = {c.name: c for c in doctor.environment_checks()}
    assert checks["providers"].level == "error"
    assert checks["providers"].detail == (
        "onnxruntime does not import: libonnxruntime.so: cannot open shared object file"
    )
    assert checks["CUDA runtime"].level in ("ok", "info")  # no GPU providers: not a warning
