"""The ``local`` (a file only its owner can read) and ``env`` secret providers."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from kitaru_core.components.secret_provider import SecretNotFoundError, SecretProvider
from kitaru_core.errors import KitaruBackendError, KitaruUsageError


class LocalSecretProvider(SecretProvider):
    """Secrets in a JSON file with mode 0600, replaced atomically on every change."""

    flavor = "local"

    def __init__(self, config: Any) -> None:
        from kitaru_core.settings import load_settings

        self.path = Path(config.path) if config.path else load_settings().home / "secrets.json"
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise KitaruBackendError(f"cannot read the secrets file {self.path}: {exc}") from exc

    def _write(self, secrets: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(secrets, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, name: str) -> str:
        secrets = self._read()
        if name not in secrets:
            raise SecretNotFoundError(
                f"the local secret provider ({self.path}) has no secret {name!r}; "
                f"add it with `kitaru secrets set {name}`"
            )
        return secrets[name]

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        with self._lock:
            secrets = self._read()
            secrets[name] = value
            self._write(secrets)

    def delete(self, name: str) -> None:
        with self._lock:
            secrets = self._read()
            if name not in secrets:
                raise SecretNotFoundError(f"the local secret provider has no secret {name!r}")
            del secrets[name]
            self._write(secrets)

    def list(self) -> list[str]:
        return sorted(self._read())


class EnvSecretProvider(SecretProvider):
    """Secrets from environment variables: ``NAME`` is read from ``PREFIX + NAME.upper()``."""

    flavor = "env"

    def __init__(self, config: Any) -> None:
        self.prefix = config.prefix

    def _variable(self, name: str) -> str:
        return f"{self.prefix}{name}".upper().replace("-", "_").replace(".", "_")

    def get(self, name: str) -> str:
        variable = self._variable(name)
        if variable not in os.environ:
            raise SecretNotFoundError(
                f"the env secret provider has no secret {name!r}: set the environment "
                f"variable {variable}"
            )
        return os.environ[variable]

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        os.environ[self._variable(name)] = value  # this process only

    def delete(self, name: str) -> None:
        if os.environ.pop(self._variable(name), None) is None:
            raise SecretNotFoundError(f"the env secret provider has no secret {name!r}")

    def list(self) -> list[str]:
        prefix = self.prefix.upper()
        return sorted(
            k[len(prefix) :].lower() for k in os.environ if prefix and k.startswith(prefix)
        )


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise KitaruUsageError(
            f"secret name {name!r} is not valid; use letters, digits, '_', '-' or '.'"
        )
