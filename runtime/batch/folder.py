"""The output folder of a run: created and checked (:func:`check_outdir`), one writer at a time
(:class:`FolderLock`), and what a write error there means (:func:`write_error`).

A file that cannot be written fails its image when the cause is that image's name (too long,
a folder in the way), and ends the run (:class:`OutputFolderError`) when it is the folder's (a
full disk, a read-only or failing file system): the next image would fail the same way, so the
run stops with one line saying what to do, and what was recorded stays for ``--skip-existing``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import CamRtError, ConfigError, InputError

if sys.platform != "win32":
    import fcntl

__all__ = ["LOCK", "FolderLock", "OutputFolderError", "check_outdir", "write_error"]

LOCK = ".cam-rt.lock"
# The errors of one output's name, not of its folder: that image fails, the run goes on.
_NAME_ERRORS = {errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EILSEQ, errno.EINVAL}
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class OutputFolderError(ConfigError):
    """The output folder cannot take more files (full, read-only, failing): ends the run, not
    one image (what was written and recorded so far stays; ``--skip-existing`` resumes)."""


def write_error(folder: Path, path: Path, exc: OSError) -> CamRtError:
    """The error to raise for ``exc``, raised writing ``path`` under ``folder``: an
    :class:`OutputFolderError` (one line, what to do), or for a name the file system refuses,
    that image's InputError."""
    reason = exc.strerror or os.strerror(exc.errno or 0) or str(exc)
    if exc.errno in _NO_SPACE:
        return OutputFolderError(
            f"no space left on {folder}: free space and rerun with --skip-existing"
        )
    if exc.errno in _NAME_ERRORS and path != folder:
        return InputError(f"cannot write {path.name} ({reason}): rename or move this input")
    return OutputFolderError(
        f"cannot write {path} ({reason}): fix the folder and rerun with --skip-existing"
    )


def check_outdir(outdir: Path) -> None:
    """Create ``outdir``; ConfigError if it cannot be written."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe = outdir / f".cam-rt-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"output folder {outdir} is not writable ({exc.strerror or exc}): choose "
            "another -o folder"
        ) from exc


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class FolderLock:
    """The one writer of an output folder: ``OUTDIR/.cam-rt.lock`` locked (``flock``, without
    waiting) while a run lasts, the holder's pid and host in it; removed when released.
    ConfigError naming the holder if another process has it. (Where ``flock`` does not exist
    or the file system refuses locks, runs are not guarded.)"""

    def __init__(self, outdir: Path) -> None:
        self.outdir = Path(outdir)
        self.path = self.outdir / LOCK
        self._fd = -1

    def __enter__(self) -> FolderLock:
        if sys.platform == "win32":
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as exc:
                raise write_error(self.outdir, self.path, exc) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 300, 0).decode("utf-8", "replace").split()
                os.close(fd)
                raise ConfigError(
                    f"{self.outdir} is being written by another cam-rt run ({_holder(holder)}): "
                    "wait for it, or give another -o"
                ) from None
            except OSError:  # no locks on this file system (ENOLCK, EOPNOTSUPP)
                os.close(fd)
                return self
            if _same_file(self.path, fd):
                break
            os.close(fd)  # removed by the run that held it as we waited: lock the new file
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise write_error(self.outdir, self.path, exc) from exc
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while locked: a run waiting on this file tries again
            os.close(self._fd)
            self._fd = -1


def _holder(fields: Sequence[str]) -> str:
    """``pid N`` (``on HOST`` if not this one) from the lock file's words."""
    if not fields:
        return "pid unknown"
    host = f" on {fields[1]}" if len(fields) > 1 and fields[1] != socket.gethostname() else ""
    return f"pid {fields[0]}{host}"
