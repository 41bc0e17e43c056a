"""The ``azure-key-vault`` secret provider."""

from __future__ import annotations

import time
from typing import Any

from kitaru.plugin import SecretNotFoundError, SecretProvider
from kitaru_azure.config import KeyVaultConfig
from kitaru_azure.errors import service_error


class _StaticToken:
    """A credential that always offers the configured bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)


class KeyVaultSecretProvider(SecretProvider):
    flavor = "azure-key-vault"

    def __init__(self, config: KeyVaultConfig) -> None:
        self.config = config
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from azure.keyvault.secrets import SecretClient

            if self.config.token:
                credential: Any = _StaticToken(self.config.token)
            else:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            options: dict[str, Any] = {
                "verify_challenge_resource": self.config.verify_challenge_resource
            }
            if self.config.connection_verify:
                options["connection_verify"] = self.config.connection_verify
            self._client = SecretClient(self.config.vault_url, credential, **options)
        return self._client

    def _error(self, exc: BaseException, name: str) -> Exception:
        if type(exc).__name__ == "ResourceNotFoundError":
            return SecretNotFoundError(
                f"Azure Key Vault {self.config.vault_url} has no secret {name!r}; "
                f"add it with `kitaru secrets set {name}`"
            )
        return service_error("azure-key-vault", f"{self.config.vault_url} {name}", exc)

    def get(self, name: str) -> str:
        try:
            return str(self.client.get_secret(name).value)
        except Exception as exc:
            raise self._error(exc, name) from None

    def set(self, name: str, value: str) -> None:
        try:
            self.client.set_secret(name, value)
        except Exception as exc:
            raise self._error(exc, name) from None

    def delete(self, name: str) -> None:
        try:
            self.client.begin_delete_secret(name).result()
            if self.config.purge_on_delete:
                self.client.purge_deleted_secret(name)
        except Exception as exc:
            raise self._error(exc, name) from None

    def list(self) -> list[str]:
        try:
            return sorted(p.name for p in self.client.list_properties_of_secrets())
        except Exception as exc:
            raise service_error("azure-key-vault", self.config.vault_url, exc) from None
