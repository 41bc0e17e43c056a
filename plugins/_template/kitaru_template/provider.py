"""The ``directory`` secret provider: one file per secret, readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kitaru_core.components.secret_provider import SecretNotFoundError, SecretProvider
from kitaru_core.errors import KitaruUsageError


class DirectorySecretProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
        tmp = target.with_name(f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
