"""The ``local`` (a file only its owner can read) and ``env`` secret providers."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from kitaru_core.components.secret_provider import SecretNotFoundError, SecretProvider
from kitaru_core.errors import KitaruBackendError
from kitaru_core.private_files import write_private
from kitaru_core.settings import load_settings
from kitaru_core.untrusted import validate_name


class LocalSecretProvider(SecretProvider):
    """Secrets in a JSON file with mode 0600, replaced atomically on every change."""

    flavor = "local"

    def __init__(self, config: Any) -> None:
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
        try:
            write_private(self.path, json.dumps(secrets, indent=2, sort_keys=True))
        except OSError as exc:
            raise KitaruBackendError(
                f"cannot write the secrets file {self.path}: {exc.strerror}; check that "
                "KITARU_HOME (or the provider's path) is writable"
            ) from exc

    def get(self, name: str) -> str:
        secrets = self._read()
        if name not in secrets:
            raise SecretNotFoundError(
                f"the local secret provider ({self.path}) has no secret {name!r}; "
                f"add it with `kitaru secrets set {name}`"
            )
        return secrets[name]

    def set(self, name: str, value: str) -> None:
        validate_name("secret name", name)
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
        return re.sub(r"[^A-Za-z0-9_]", "_", f"{self.prefix}{name}").upper()

    def get(self, name: str) -> str:
        variable = self._variable(name)
        if variable not in os.environ:
            raise SecretNotFoundError(
                f"the env secret provider has no secret {name!r}: set the environment "
                f"variable {variable}"
            )
        return os.environ[variable]

    def set(self, name: str, value: str) -> None:
        validate_name("secret name", name)
        os.environ[self._variable(name)] = value  # this process only

    def delete(self, name: str) -> None:
        if os.environ.pop(self._variable(name), None) is None:
            raise SecretNotFoundError(f"the env secret provider has no secret {name!r}")

    def list(self) -> list[str]:
        prefix = self.prefix.upper()
        return sorted(
            k[len(prefix) :].lower() for k in os.environ if prefix and k.startswith(prefix)
        )
