"""The ``directory`` secret provider: one file per secret, readable by its owner only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kitaru.plugin import KitaruUsageError, SecretNotFoundError, SecretProvider, StrictConfig


class DirectorySecretProviderConfig(StrictConfig):
    path: str


class DirectorySecretProvider(SecretProvider):
    flavor = "directory"

    def __init__(self, config: DirectorySecretProviderConfig) -> None:
        self.root = Path(config.path).expanduser()

    def _file(self, name: str) -> Path:
        if not name or not all(c.isalnum() or c in "_-." for c in name) or name.startswith("."):
            raise KitaruUsageError(f"secret name {name!r} is not valid here")
        return self.root / name

    def get(self, name: str) -> str:
        try:
            return self._file(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SecretNotFoundError(f"no secret {name!r} in {self.root}") from None

    def set(self, name: str, value: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self._file(name)
        # A new file with a random name (O_EXCL, mode 0600), renamed into place: no
        # predictable temporary name another user could create first.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value)
        os.replace(tmp, target)

    def delete(self, name: str) -> None:
        try:
            self._file(name).unlink()
        except FileNotFoundError:
            raise SecretNotFoundError(f"no secret {name!r} in {self.root}") from None

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("."))
