"""Outputs of cam_rt.runtime.batch.io: only regular files are replaced, symlinks are followed,
temporaries have short names and are cleaned up unless a live writer holds them."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from cam_rt.runtime.batch.io import Temporary, remove_temporaries, write_atomic
from cam_rt.runtime.errors import ConfigError


def _special(kind: str, path: Path) -> Path:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        here = Path.cwd()
        os.chdir(path.parent)  # AF_UNIX paths are limited to about 100 bytes
        try:
            sock.bind(path.name)
        finally:
            os.chdir(here)
            sock.close()
    elif kind == "device":
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
        except PermissionError:
            pytest.skip("creating a device node needs CAP_MKNOD")
    elif kind == "folder":
        path.mkdir()
    elif kind == "link to /dev/null":
        path.symlink_to("/dev/null")
    return path


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("fifo", "a FIFO (named pipe)"),
        ("socket", "a socket"),
        ("device", "a character device"),
        ("folder", "a folder"),
        ("link to /dev/null", "a character device"),
    ],
)
def test_outputs_never_replace_special_files(tmp_path: Path, kind: str, shown: str) -> None:
    path = _special(kind, tmp_path / "out.json")
    before = os.lstat(path)
    with pytest.raises(ConfigError) as info:
        write_atomic(path, b"{}")
    message = str(info.value)
    assert message.startswith(f"output {path} is {shown}") and "\n" not in message
    assert "cam-rt replaces only regular files" in message
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left


def test_a_link_to_a_file_is_followed(tmp_path: Path) -> None:
    """The policy: a symlink at an output path is written through (its target is checked like
    any output and replaced atomically); the link stays."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "report.json"
    target.write_bytes(b"old")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    write_atomic(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "real" / "later.json")
    write_atomic(dangling, b"x")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.json").read_bytes() == b"x"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["later.json", "report.json"]


@pytest.mark.parametrize("length", [240, 255])
def test_long_output_names_fit_the_temporary(tmp_path: Path, length: int) -> None:
    """NAME_MAX is 255 bytes: the temporary's name does not grow with the output's."""
    path = tmp_path / ("n" * (length - 4) + ".png")
    assert len(path.name) == length
    write_atomic(path, b"x")
    assert [p.name for p in tmp_path.iterdir()] == [path.name] and path.read_bytes() == b"x"


def test_remove_temporaries_leaves_live_ones_and_other_files(tmp_path: Path) -> None:
    stale = [tmp_path / ".cam-rt-0123abcd.tmp", tmp_path / ".cam-rt-ffffffff.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    keep = [
        tmp_path / ".cam-rt-0123abcd.tmp.png",  # not the naming
        tmp_path / ".cam-rt-0123ABCD.tmp",
        tmp_path / "x.png",
    ]
    for path in keep:
        path.write_bytes(b"mine")
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / ".cam-rt-00000000.tmp"
    nested.write_bytes(b"partial")
    (tmp_path / ".cam-rt-11111111.tmp").symlink_to(tmp_path / "x.png")  # links: not followed
    with Temporary(tmp_path) as live:  # another run's file being written now
        assert live.path.parent == tmp_path and len(live.path.name) == len(".cam-rt-12345678.tmp")
        assert remove_temporaries(tmp_path) == 2
        assert live.path.exists()
    assert not live.path.exists()  # unpublished: removed when closed
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
    assert nested.exists() and (tmp_path / ".cam-rt-11111111.tmp").is_symlink()
    assert remove_temporaries(tmp_path, recursive=True) == 1 and not nested.exists()
    assert remove_temporaries(tmp_path / "missing") == 0
