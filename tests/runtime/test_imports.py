"""The runtime never imports TensorFlow, Keras, tf2onnx or cam_rt.export (fresh processes)."""

from __future__ import annotations

import subprocess
import sys

import cam_rt.runtime

HEAVY = ("tensorflow", "keras", "tf_keras", "tf2onnx", "cam_rt.export")


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\nprint('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
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
    import __future__

    import inspect

    public = {
        name
        for name, value in vars(cam_rt.runtime).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and not isinstance(value, __future__._Feature)
    }
    assert set(cam_rt.runtime.__all__) - {"__version__"} == public
    for name in cam_rt.runtime.__all__:
        assert hasattr(cam_rt.runtime, name)


def test_export_package_import_is_light() -> None:
    """Importing cam_rt.export itself does not pull TensorFlow in (only calling it does)."""
    loaded = _loaded_after("import cam_rt.export")
    assert "tensorflow" not in loaded and "tf2onnx" not in loaded and "keras" not in loaded
