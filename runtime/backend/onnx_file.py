"""An ONNX file's ``metadata_props``, read without ONNX Runtime and without loading the weights.

A ``.onnx`` file is one protobuf ``ModelProto``. Its fields are read in order: varints and
fixed-size values are skipped, length-delimited fields (the graph, holding the weights) are
sought past, and only field 14, ``metadata_props`` (repeated ``StringStringEntryProto`` with
``1: key`` and ``2: value``), is read. So a process that only needs a model's cam-rt metadata
(class names, output kind, input size; e.g. the driver of ``--engine ray``) reads a few
kilobytes of a file of any size, creates no session and never touches an external data file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

from ..errors import ModelLoadError
from ..metadata import ModelMetadata

__all__ = ["props_of", "read_metadata", "read_metadata_props"]

_METADATA_PROPS = 14  # ModelProto.metadata_props
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class _Broken(ValueError):
    """The bytes are not a protobuf message."""


def _varint(stream: BinaryIO) -> int | None:
    """The next varint, or None at the end of the stream (before its first byte)."""
    value, shift = 0, 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift:
                raise _Broken("the file ends inside a number")
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise _Broken("a number is longer than 10 bytes")


def _metadata_entries(stream: BinaryIO, size: int) -> list[bytes]:
    """The ``metadata_props`` entries of the ModelProto in ``stream`` (``size`` bytes), still
    encoded; every other field is skipped without being read."""
    found: list[bytes] = []
    while True:
        tag = _varint(stream)
        if tag is None:
            return found
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Broken("field number 0")
        if wire == _VARINT:
            if _varint(stream) is None:
                raise _Broken("the file ends inside a number")
        elif wire in (_FIXED64, _FIXED32):
            skip = 8 if wire == _FIXED64 else 4
            if stream.seek(skip, os.SEEK_CUR) > size:
                raise _Broken("the file ends inside a field")
        elif wire == _LENGTH:
            length = _varint(stream)
            if length is None or stream.tell() + length > size:
                raise _Broken(f"field {number} runs past the end of the file")
            if number == _METADATA_PROPS:
                found.append(stream.read(length))
            else:
                stream.seek(length, os.SEEK_CUR)
        else:
            raise _Broken(f"field {number} has wire type {wire}")


def _entry(payload: bytes) -> tuple[str, str]:
    """(key, value) of one ``StringStringEntryProto``."""
    key = value = ""
    stream = io.BytesIO(payload)
    while True:
        tag = _varint(stream)
        if tag is None:
            return key, value
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _varint(stream)
            continue
        if wire != _LENGTH:
            raise _Broken(f"a metadata entry has field {number} of wire type {wire}")
        length = _varint(stream)
        data = stream.read(length or 0)
        if length is None or len(data) != length:
            raise _Broken("a metadata entry is cut short")
        if number in (1, 2):
            text = data.decode("utf-8")
            key, value = (text, value) if number == 1 else (key, text)


def props_of(stream: BinaryIO, size: int) -> dict[str, str]:
    """The ``metadata_props`` of the ModelProto in ``stream`` (``size`` bytes long); raises
    ValueError if the bytes are not a protobuf message. A repeated key keeps its last value."""
    try:
        return dict(_entry(payload) for payload in _metadata_entries(stream, size))
    except UnicodeDecodeError as exc:
        raise _Broken(f"a metadata string is not UTF-8 ({exc.reason})") from exc


def read_metadata_props(path: str | Path) -> dict[str, str]:
    """The key/value strings of the ONNX file's ``metadata_props`` (ModelLoadError if the file
    is missing or is not an ONNX protobuf)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file '{path}' does not exist")
    try:
        with path.open("rb") as stream:
            return props_of(stream, path.stat().st_size)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path} ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise ModelLoadError(
            f"{path} is not an ONNX model ({exc}): pass a file written by 'cam-rt export'"
        ) from exc


def read_metadata(path: str | Path) -> ModelMetadata:
    """The cam-rt metadata of the ONNX file at ``path``, as a session on it would read it."""
    return ModelMetadata.from_props(read_metadata_props(path), where=str(Path(path)))
