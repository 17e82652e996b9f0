"""The journal of a run: its records appended during the run, merged into ``results.jsonl``.

During a run each image's line (see :mod:`~cam_rt.runtime.batch.records`) is appended to
``.results.journal.jsonl``, each line whole, synced at checkpoints; at the end the journal is
merged into ``results.jsonl`` in input order, so a killed run leaves a journal the next
``--skip-existing`` run reads (:meth:`Journal.recorded`) and merges. A line that is cut,
garbled or edited into something else is ignored (its image is done again), never fatal.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import stat
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from ..errors import CamRtError, ConfigError
from .folder import write_error
from .inputs import InputItem
from .io import write_atomic

__all__ = ["JOURNAL", "RESULTS", "Journal"]

RESULTS = "results.jsonl"
JOURNAL = ".results.journal.jsonl"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The record on one line: a JSON object with a non-empty string ``name``; else None."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError:  # not UTF-8 (UnicodeDecodeError is a ValueError) or not JSON
        return None
    if isinstance(record, dict) and isinstance(record.get("name"), str) and record["name"]:
        return record
    return None


def _complete(record: Mapping[str, Any]) -> bool:
    """Whether a record has what a resume needs: a string ``error``, or ``outputs`` (files)."""
    if "error" in record:
        return isinstance(record["error"], str)
    outputs = record.get("outputs")
    return isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)


def _lines(path: Path, whole: bool) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes with the newline) of each non-blank line of the regular file at ``path``
    (nothing if there is none); ``whole``: not a last line without its newline (cut)."""
    try:
        if not path.is_file():  # not a folder or a FIFO (which would block)
            return
        with path.open("rb") as f:
            offset = 0
            for raw in f:
                if raw.strip() and (raw.endswith(b"\n") or not whole):
                    yield offset, raw
                offset += len(raw)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path} ({exc.strerror or exc}): fix it, or run without --skip-existing"
        ) from exc


class Journal:
    """The records of a run in ``outdir``: the journal appended during the run (a context
    manager: open while the run lasts), merged into ``results.jsonl`` by :meth:`merge`.

    Each line is written whole with one ``write`` (a failed write is cut off again), and synced
    to disk every ``sync_lines`` lines or ``sync_seconds`` and when closed; opening cuts a
    killed run's partial last line, so no line is ever appended to one. A write that fails
    raises :class:`~cam_rt.runtime.batch.folder.OutputFolderError` (the run ends).
    """

    def __init__(self, outdir: Path, sync_lines: int = 64, sync_seconds: float = 2.0) -> None:
        self.outdir = Path(outdir)
        self.path = self.outdir / JOURNAL
        self.sync_lines = sync_lines
        self.sync_seconds = sync_seconds
        self._fd = -1
        self._size = 0  # bytes of whole lines
        self._unsynced = 0
        self._synced_at = 0.0

    def recorded(self, warn: Callable[[str], None] | None = None) -> set[str]:
        """Names with a success line in results.jsonl or in a killed run's journal. Lines that
        are cut, garbled, not JSON or lack what a resume needs are ignored (their images are
        done again), with one ``warn`` message counting them."""
        done: set[str] = set()
        damaged: dict[Path, int] = {}
        for path, whole in ((self.outdir / RESULTS, False), (self.path, True)):
            for _, raw in _lines(path, whole=False):
                record = _parse(raw)
                if record is None or not _complete(record) or (whole and raw[-1:] != b"\n"):
                    damaged[path] = damaged.get(path, 0) + 1
                elif "error" not in record:
                    done.add(record["name"])
        count = sum(damaged.values())
        if count and warn is not None:
            whose = "their images are" if count > 1 else "its image is"
            warn(
                f"ignored {count} damaged line{'s' if count > 1 else ''} of "
                f"{' and '.join(map(str, damaged))} (cut, garbled or edited by hand): "
                f"{whose} done again"
            )
        return done

    def clear(self) -> None:
        """Forget a killed run's journal (a new run, not a resumed one)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise write_error(self.outdir, self.path, exc) from exc

    def __enter__(self) -> Journal:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _CLOEXEC, 0o666)
            try:
                self._size = _cut_partial_line(fd)
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            raise write_error(self.outdir, self.path, exc) from exc
        self._fd, self._unsynced, self._synced_at = fd, 0, time.monotonic()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd < 0:
            return
        try:
            if self._unsynced:
                self._sync()
        except CamRtError:
            if kind is None:  # else the run's own error is the one to report
                raise
        finally:
            os.close(self._fd)
            self._fd = -1

    def append(self, record: Mapping[str, Any]) -> None:
        """One whole line (it survives a kill right after; a power cut after the next sync)."""
        if self._fd < 0:
            raise RuntimeError("the journal is not open: use it as a context manager")
        line = (json.dumps(record) + "\n").encode()
        data = memoryview(line)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except BaseException as exc:
            with contextlib.suppress(OSError):  # no partial line left behind
                os.ftruncate(self._fd, self._size)
            if isinstance(exc, OSError):
                raise write_error(self.outdir, self.path, exc) from exc
            raise
        self._size += len(line)
        self._unsynced += 1
        if (
            self._unsynced >= self.sync_lines
            or time.monotonic() - self._synced_at >= self.sync_seconds
        ):
            self._sync()

    def _sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # a device that cannot sync
                raise write_error(self.outdir, self.path, exc) from exc
        self._unsynced, self._synced_at = 0, time.monotonic()

    def merge(
        self, items: Sequence[InputItem], keep_results: bool | Callable[[str], bool]
    ) -> dict[str, dict[str, Any]]:
        """Write results.jsonl: the journal's lines and the previous results.jsonl's kept by
        ``keep_results`` (True: all, False: none, or a test per name), the newest line per
        image, in input order (others after, by name); remove the journal. Returns the first 8
        records by name (the grid's titles). Only where the lines are is held, not the lines.
        """
        keep = keep_results if callable(keep_results) else (lambda _name: bool(keep_results))
        sources = (self.outdir / RESULTS, self.path)
        index = _Index(items)
        for source, path in enumerate(sources):
            if source == 0 and keep_results is False:
                continue
            for offset, raw in _lines(path, whole=source == 1):
                record = _parse(raw)
                if record is not None and (source == 1 or keep(record["name"])):
                    index.put(record["name"], source, offset, len(raw))

        def write(out: BinaryIO) -> None:
            with contextlib.ExitStack() as stack:
                files = [
                    stack.enter_context(p.open("rb")) if p.is_file() else None for p in sources
                ]
                for source, offset, length in index:
                    f = files[source]
                    assert f is not None
                    f.seek(offset)
                    out.write(f.read(length).rstrip(b"\r\n") + b"\n")

        results = self.outdir / RESULTS
        try:
            write_atomic(results, write)
            _sync_path(results)  # on disk before the journal goes
            with contextlib.suppress(OSError):
                _sync_path(self.outdir)  # the rename too, where folders can be synced
        except OSError as exc:
            raise write_error(self.outdir, results, exc) from exc
        self.clear()
        first: dict[str, dict[str, Any]] = {}
        with results.open("rb") as f:
            for raw in itertools.islice(f, 8):
                record = _parse(raw)
                if record is not None:
                    first[record["name"]] = record
        return first


class _Index:
    """Where the newest line of each image is: (source, offset, length), for the inputs in
    arrays (13 bytes an input: a run may have millions), for other names in a dict. Iterates
    in input order, then the other names sorted."""

    def __init__(self, items: Sequence[InputItem]) -> None:
        self.order = {item.name: i for i, item in enumerate(items)}
        self.source = array("b", [-1]) * len(items)
        self.offset = array("q", [0]) * len(items)
        self.length = array("i", [0]) * len(items)
        self.others: dict[str, tuple[int, int, int]] = {}

    def put(self, name: str, source: int, offset: int, length: int) -> None:
        i = self.order.get(name)
        if i is None:
            self.others[name] = (source, offset, length)
        else:
            self.source[i], self.offset[i], self.length[i] = source, offset, length

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for i, source in enumerate(self.source):
            if source >= 0:
                yield source, self.offset[i], self.length[i]
        for name in sorted(self.others):
            yield self.others[name]


def _sync_path(path: Path) -> None:
    """``fsync`` the file or folder at ``path`` (OSError if that fails; not where the system
    cannot sync it)."""
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _cut_partial_line(fd: int) -> int:
    """Truncate the file open as ``fd`` after its last newline (a last line without one was
    cut by a kill); the size left. Files that are not regular are left as they are."""
    info = os.fstat(fd)
    size = info.st_size
    if not stat.S_ISREG(info.st_mode) or size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    keep, end = 0, size
    while end > 0:
        start = max(0, end - 65536)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        end = start
    os.ftruncate(fd, keep)
    return keep
