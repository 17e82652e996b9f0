"""The runtime's layers, read from the source (AST): each module imports only the layers below it.

    base (errors, metadata, classes, _version)
    < maps (pure arrays) < backend (ONNX Runtime) < explain, plan
    < batch (files, runs) < tools (commands' engines), serve (HTTP) < cli

A module may import its own sub-package and any lower layer; ``runtime/__init__.py`` is the
public API and may import anything below the CLI. Only ``backend`` imports onnxruntime
(``tools/quantize`` uses ``onnxruntime.quantization``, the quantizer, not sessions).
"""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
LAYERS = {
    "_version": 0,
    "errors": 0,
    "metadata": 0,
    "classes": 0,
    "maps": 1,
    "backend": 2,
    "explain": 3,
    "plan": 3,
    "batch": 4,
    "tools": 5,
    "serve": 5,
    "cli": 6,
}
FACADE = 5  # runtime/__init__.py: everything but the CLI


def _unit(parts: tuple[str, ...]) -> str:
    """The layer unit of a module path below runtime/: its sub-package, or its module name."""
    return parts[0].removesuffix(".py")


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """(dotted module: cam_rt.runtime.* for the runtime's own, else as written; line)."""
    package = list(path.relative_to(root).parts[:-1])
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level - 1 <= len(package), f"{path}:{node.lineno} leaves the runtime"
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [[a.name] for a in node.names] if node.module is None else [[]]
                found.extend(
                    ("cam_rt.runtime." + ".".join([*target, *n]), node.lineno) for n in names
                )
            elif node.module:
                found.append((node.module, node.lineno))
                if node.module == "onnxruntime":
                    found.extend((f"onnxruntime.{a.name}", node.lineno) for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return found


def layer_violations(root: Path) -> list[str]:
    """Every import of the tree at ``root`` that goes up (or sideways into another unit)."""
    bad: list[str] = []
    for path in _modules(root):
        rel = path.relative_to(root)
        unit = _unit(rel.parts)
        if unit == "__init__":
            unit, level = "__init__", FACADE
        elif unit not in LAYERS:
            bad.append(f"{rel}: no layer for {unit}")
            continue
        else:
            level = LAYERS[unit]
        for module, line in _imports(path, root):
            if module.split(".")[0] == "onnxruntime":
                quantizer = rel == Path("tools/quantize.py") and module in (
                    "onnxruntime",
                    "onnxruntime.quantization",
                )
                if rel.parts[0] != "backend" and not quantizer:
                    bad.append(f"{rel}:{line} imports {module}; only backend/ talks to it")
                continue
            if not module.startswith("cam_rt.runtime."):
                continue
            target = module.removeprefix("cam_rt.runtime.").split(".")[0]
            if target == unit:
                continue
            if target not in LAYERS:
                bad.append(f"{rel}:{line} imports {module}, which has no layer")
            elif LAYERS[target] > level or (LAYERS[target] == level and unit != "__init__"):
                same = LAYERS[target] == level and len(rel.parts) == 1 and "." not in module[15:]
                if not same:
                    bad.append(
                        f"{rel}:{line} ({unit}, {level}) imports {module} ({LAYERS[target]})"
                    )
    return bad


def test_the_runtime_keeps_its_layers() -> None:
    assert layer_violations(RUNTIME) == []


def test_a_wrong_import_is_found(tmp_path: Path) -> None:
    """The checker itself, on a small tree: upward, sideways and onnxruntime imports."""
    (tmp_path / "maps").mkdir()
    (tmp_path / "batch").mkdir()
    (tmp_path / "errors.py").write_text("")
    (tmp_path / "maps" / "tta.py").write_text(
        "from ..errors import E\nfrom .cam import f\nfrom ..batch.io import read\n"
    )
    (tmp_path / "batch" / "io.py").write_text("import onnxruntime\nfrom ..maps import tta\n")
    assert layer_violations(tmp_path) == [
        "batch/io.py:1 imports onnxruntime; only backend/ talks to it",
        "maps/tta.py:3 (maps, 1) imports cam_rt.runtime.batch.io (4)",
    ]
