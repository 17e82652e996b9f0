"""Writing a cam-rt model: a temporary file beside the target, checked, then published.

Both importers (Keras and ONNX) end here. Nothing is left behind when the check fails or the
disk is full, and a model at the output path stays as it was until the new one replaces it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cam_rt.runtime._version import __version__
from cam_rt.runtime.batch.io import Temporary, check_output, ordinary_permissions, publish
from cam_rt.runtime.errors import ConfigError, ExportError
from cam_rt.runtime.metadata import ModelMetadata

from ._deps import import_optional
from .verify import Parity

__all__ = ["check_output_path", "op_counts", "to_fp16", "write_checked"]

Log = Callable[[str], None]


def check_output_path(path: Path, source: Path | None = None) -> Path:
    """The resolved output path; ConfigError for a folder, a FIFO, socket or device (only a
    regular file is replaced), the source itself, or no access."""
    path = path.expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"output {path} is a folder: give a file name such as model.onnx")
    if source is not None and source.expanduser().resolve() == path:
        raise ConfigError(
            f"output {path} is the model being exported: give another -o path (the source "
            "would be overwritten)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {path.parent}: {exc}") from exc
    check_output(path)
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"output folder {path.parent} is not writable: choose another -o path")
    return path


def to_fp16(proto: Any) -> Any:
    """fp16 weights and compute, fp32 inputs and outputs (onnxconverter-common)."""
    float16 = import_optional("onnxconverter_common.float16", "onnxconverter-common", "fp16 export")
    return float16.convert_float_to_float16(proto, keep_io_types=True)


def op_counts(proto: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def write_checked(
    proto: Any,
    metadata: ModelMetadata,
    out: Path,
    check: Callable[[Path], list[Parity]],
    say: Log,
) -> tuple[list[Parity], int]:
    """Write ``proto`` with ``metadata`` to a temporary file, ``check`` it, publish it at ``out``.

    ``proto`` is cleared once written (big models' weights are not held twice during the
    check). Returns the check's rows and the bytes written (model + external data). ``check`` raises
    (ExportError) to refuse the file; then nothing is left behind.
    """
    onnx = import_optional("onnx", "onnx", "writing ONNX files")
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.producer_name = "cam-rt"
    proto.producer_version = __version__
    try:
        staging = Temporary(out.parent)  # .cam-rt-<8 hex>.tmp, locked until closed
    except OSError as exc:
        raise ConfigError(f"cannot write to {out.parent} ({exc}): choose another -o path") from exc
    tmp = staging.path
    data = out.parent / metadata.external_data if metadata.external_data else None
    replaced = _side_file_of(out)  # the weights file of the model this export replaces
    published = False
    try:
        try:
            if data is not None:  # written at its final, new name; the model refers to it
                onnx.save(
                    proto,
                    str(tmp),
                    save_as_external_data=True,
                    all_tensors_to_one_file=True,
                    location=data.name,
                    size_threshold=1024,
                )
                ordinary_permissions(data)
            else:
                onnx.save(proto, str(tmp))
            proto.Clear()  # the check reads the file: free the weights' memory before it
        except (OSError, ValueError) as exc:  # ValueError: a single file over 2 GB
            hint = "; pass --external-data for models over 2 GB" if "2GB" in str(exc) else ""
            raise ExportError(f"cannot write {out} ({exc}){hint}; nothing was written") from exc
        rows = check(tmp)
        for row in rows:
            say("check " + row.line())
        size = tmp.stat().st_size + (data.stat().st_size if data is not None else 0)
        publish(tmp, out)
        published = True
    except BaseException:
        tmp.unlink(missing_ok=True)
        if data is not None and not published:
            data.unlink(missing_ok=True)
        raise
    finally:
        staging.close()
    if replaced is not None and replaced != data:
        try:
            replaced.unlink(missing_ok=True)
        except OSError as exc:  # the new model is in place; say what is left behind
            say(f"could not remove the replaced weights file {replaced} ({exc})")
    return rows, size


def _side_file_of(path: Path) -> Path | None:
    """The weights side file named in the cam-rt model at ``path`` (None: no such model, or
    its weights are inside). Only small files are read: one with its weights inside is large
    and has no side file."""
    try:
        if not path.is_file() or path.stat().st_size > 64 * 2**20:
            return None
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not a readable model: nothing of ours to clean up
        return None
    props = {p.key: p.value for p in proto.metadata_props}
    name = props.get("cam_rt.external_data", "")
    return path.parent / name if name and Path(name).name == name else None
