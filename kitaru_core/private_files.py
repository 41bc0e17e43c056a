"""Files and directories only their owner can read, whatever the umask.

Kitaru's home holds prompts, responses, inputs, memory and secrets, so every directory
it creates is 0700 and every file 0600. Files are replaced atomically through a
temporary file with a random name created with ``O_EXCL`` (never a predictable name
another user could create first), so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents, each mode 0700."""
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)  # the umask can only take bits away
    return path


def tighten(path: str | os.PathLike[str]) -> None:
    """Take group and other permissions off a file or directory this user owns (a home
    made by an earlier Kitaru, or under a lax umask). Missing paths are ignored."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        mode = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
        with contextlib.suppress(OSError):
            os.chmod(path, mode)


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new file with a random name in ``path``'s directory: (fd, name), mode 0600."""
    private_dir(path.parent)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def write_private(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically; the file is mode 0600."""
    path = Path(path)
    fd, tmp = _temp_beside(path)
    try:
        try:
            _write_all(fd, data.encode() if isinstance(data, str) else data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_private_new(path: str | os.PathLike[str], data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; returns whether this call made
    it. Two processes racing both see the same complete file afterwards."""
    path = Path(path)
    fd, tmp = _temp_beside(path)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made it first
            return True
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def open_private_append(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for appending, creating it mode 0600 (and its directory 0700)."""
    path = Path(path)
    private_dir(path.parent)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE), "ab")
