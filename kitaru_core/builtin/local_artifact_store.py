"""Artifacts as files under a directory: ``<root>/<key[:2]>/<key>``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kitaru_core.components.artifact_store import ArtifactStore
from kitaru_core.errors import KitaruBackendError
from kitaru_core.private_files import FILE_MODE, private_dir
from kitaru_core.settings import load_settings

_CHUNK = 1024 * 1024


def _holds(path: str, key: str) -> bool:
    """Whether ``path`` exists with the bytes whose SHA-256 is ``key``. A damaged blob
    (a disk error, a hand edit) does not count, so the next write repairs it."""
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256")
    except FileNotFoundError:
        return False
    return digest.hexdigest() == key


class LocalArtifactStore(ArtifactStore):
    """Writes go to a temporary file renamed into place, so a reader (or a crash)
    never sees half a blob. With ``fsync`` the file and its directory are flushed to
    disk before the rename is relied on, which survives power loss too."""

    flavor = "local"

    def __init__(self, config: Any) -> None:
        settings = load_settings()
        self.root = Path(config.path).expanduser() if config.path else settings.home / "artifacts"
        self.fsync = settings.durability == "full"
        self._made_dirs: set[str] = set()
        self._tmp_counter = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], key)

    def put(self, key: str, source: BinaryIO | bytes) -> None:
        path = self._path(key)
        if _holds(path, key):
            return  # content-addressed: the same key holds the same bytes
        directory = os.path.dirname(path)
        if directory not in self._made_dirs:
            self._make_dir(directory)
        with self._lock:
            self._tmp_counter += 1
            tmp = f"{path}.{os.getpid()}.{self._tmp_counter}.tmp"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            except FileNotFoundError:
                # The directory went away under this process (someone cleaned up):
                # make it again rather than fail every write until a restart.
                self._made_dirs.discard(directory)
                self._make_dir(directory)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            try:
                if isinstance(source, bytes):
                    view = memoryview(source)
                    while view:
                        view = view[os.write(fd, view) :]
                else:
                    with os.fdopen(os.dup(fd), "wb", closefd=True) as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if self.fsync:
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise KitaruBackendError(
                f"local artifact store cannot write {path}: {exc}; "
                "check free disk space and permissions"
            ) from exc

    def _make_dir(self, directory: str) -> None:
        try:
            private_dir(directory)
        except OSError as exc:
            raise KitaruBackendError(
                f"local artifact store cannot create {directory}: {exc}; "
                "check that KITARU_HOME (or the stack's artifact path) is writable"
            ) from exc
        self._made_dirs.add(directory)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def read(self, key: str) -> bytes:
        with open(self._path(key), "rb") as f:
            return f.read()

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and (sub.name.startswith(prefix[:2]) or len(prefix) < 2):
                for f in sorted(sub.iterdir()):
                    if not f.name.endswith(".tmp") and f.name.startswith(prefix):
                        yield f.name

    def uri(self, key: str) -> str:
        return Path(self._path(key)).absolute().as_uri()
