"""The runtime never imports TensorFlow, Keras, tf2onnx or cam_rt.export (fresh processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cam_rt.runtime

HEAVY = ("tensorflow", "keras", "tf_keras", "tf2onnx", "cam_rt.export")


def _loaded_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    probe = (
        f"{code}\nimport sys\nprint('loaded:' + ','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("loaded:"), proc.stdout
    return [m for m in line.removeprefix("loaded:").split(",") if m]


def test_import_runtime_loads_no_tensorflow() -> None:
    assert _loaded_after("import cam_rt.runtime") == []
    # every module of the runtime, the ones cam_rt.runtime does not import itself included
    walk = (
        "import pkgutil, importlib, cam_rt.runtime as r\n"
        "names = [m.name for m in pkgutil.walk_packages(r.__path__, 'cam_rt.runtime.')]\n"
        "assert len(names) > 25, names\n"
        "for n in names:\n    if not n.endswith('__main__'):\n        importlib.import_module(n)"
    )
    assert _loaded_after(walk) == []


def test_help_loads_no_tensorflow() -> None:
    code = (
        "from cam_rt.runtime.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
        "try:\n    main(['export', '--help'])\n"
        "except SystemExit as e:\n    assert e.code in (0, None)"
    )
    loaded = _loaded_after(code)
    assert "tensorflow" not in loaded and "keras" not in loaded and "tf2onnx" not in loaded


def test_public_api_is_listed() -> None:
    """Every name of __all__ resolves (loaded on first use) and is what its module defines."""
    import importlib

    exports = cam_rt.runtime._EXPORTS
    assert set(cam_rt.runtime.__all__) == set(exports) | {"__version__"}
    for name, module in exports.items():
        value = getattr(cam_rt.runtime, name)
        assert value is getattr(importlib.import_module(module, "cam_rt.runtime"), name)
        assert name in dir(cam_rt.runtime)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cam_rt.runtime.nope  # noqa: B018


def test_the_command_starts_without_numpy() -> None:
    """``cam-rt`` installs its signal handlers before anything heavy is imported."""
    assert _loaded_after("import cam_rt.runtime.cli", ("numpy", "onnxruntime", "PIL")) == []


def test_export_package_import_is_light() -> None:
    """Importing cam_rt.export itself does not pull TensorFlow in (only calling it does)."""
    loaded = _loaded_after("import cam_rt.export")
    assert "tensorflow" not in loaded and "tf2onnx" not in loaded and "keras" not in loaded
