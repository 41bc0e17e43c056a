"""The ``gcp-secret-manager`` secret provider: each secret's latest version by default."""

from __future__ import annotations

import contextlib
from typing import Any

from kitaru.plugin import SecretNotFoundError, SecretProvider
from kitaru_gcp.config import GCPSecretManagerConfig
from kitaru_gcp.credentials import credentials
from kitaru_gcp.errors import service_error


class GCPSecretManagerProvider(SecretProvider):
    flavor = "gcp-secret-manager"

    def __init__(self, config: GCPSecretManagerConfig) -> None:
        self.config = config
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import secretmanager

            options = {"api_endpoint": self.config.endpoint} if self.config.endpoint else None
            self._client = secretmanager.SecretManagerServiceClient(
                credentials=credentials(self.config), transport="rest", client_options=options
            )
        return self._client

    def _path(self, name: str) -> str:
        return f"projects/{self.config.project}/secrets/{self.config.prefix}{name}"

    def _error(self, exc: BaseException, name: str) -> Exception:
        if type(exc).__name__ == "NotFound":
            return SecretNotFoundError(
                f"Google Secret Manager has no secret {self._path(name)!r}; "
                f"add it with `kitaru secrets set {name}`"
            )
        return service_error("gcp-secret-manager", self._path(name), exc)

    def get(self, name: str) -> str:
        try:
            response = self.client.access_secret_version(
                request={"name": f"{self._path(name)}/versions/{self.config.version}"}
            )
        except Exception as exc:
            raise self._error(exc, name) from None
        return str(response.payload.data.decode("utf-8"))

    def set(self, name: str, value: str) -> None:
        from google.api_core.exceptions import Conflict  # AlreadyExists over REST

        try:
            with contextlib.suppress(Conflict):
                self.client.create_secret(
                    request={
                        "parent": f"projects/{self.config.project}",
                        "secret_id": f"{self.config.prefix}{name}",
                        "secret": {"replication": {"automatic": {}}},
                    }
                )
            self.client.add_secret_version(
                request={"parent": self._path(name), "payload": {"data": value.encode("utf-8")}}
            )
        except Exception as exc:
            raise self._error(exc, name) from None

    def delete(self, name: str) -> None:
        try:
            self.client.delete_secret(request={"name": self._path(name)})
        except Exception as exc:
            raise self._error(exc, name) from None

    def list(self) -> list[str]:
        parent = f"projects/{self.config.project}"
        try:
            names = [
                s.name.rsplit("/", 1)[-1]
                for s in self.client.list_secrets(request={"parent": parent})
            ]
        except Exception as exc:
            raise service_error("gcp-secret-manager", parent, exc) from None
        prefix = self.config.prefix
        return sorted(n[len(prefix) :] for n in names if n.startswith(prefix))
