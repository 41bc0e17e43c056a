"""The ``aws-secrets-manager`` secret provider (optional name prefix)."""

from __future__ import annotations

from typing import Any

from kitaru.plugin import SecretNotFoundError, SecretProvider
from kitaru_aws.config import SecretsManagerConfig
from kitaru_aws.errors import error_code, service_error
from kitaru_aws.session import client


class SecretsManagerProvider(SecretProvider):
    flavor = "aws-secrets-manager"

    def __init__(self, config: SecretsManagerConfig) -> None:
        self.config = config
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client("secretsmanager", self.config)
        return self._client

    def _id(self, name: str) -> str:
        return f"{self.config.prefix}{name}"

    def _error(self, exc: BaseException, name: str) -> Exception:
        if error_code(exc) == "ResourceNotFoundException":
            return SecretNotFoundError(
                f"AWS Secrets Manager has no secret {self._id(name)!r}; "
                f"add it with `kitaru secrets set {name}`"
            )
        return service_error("aws-secrets-manager", self._id(name), exc, self.config)

    def get(self, name: str) -> str:
        try:
            return str(self.client.get_secret_value(SecretId=self._id(name))["SecretString"])
        except Exception as exc:
            raise self._error(exc, name) from None

    def set(self, name: str, value: str) -> None:
        try:
            self.client.put_secret_value(SecretId=self._id(name), SecretString=value)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise self._error(exc, name) from None
            try:
                self.client.create_secret(Name=self._id(name), SecretString=value)
            except Exception as create_exc:
                raise self._error(create_exc, name) from None

    def delete(self, name: str) -> None:
        try:
            # A forced delete of a secret that does not exist succeeds: look first.
            self.client.describe_secret(SecretId=self._id(name))
            self.client.delete_secret(SecretId=self._id(name), ForceDeleteWithoutRecovery=True)
        except Exception as exc:
            raise self._error(exc, name) from None

    def list(self) -> list[str]:
        names = []
        try:
            for page in self.client.get_paginator("list_secrets").paginate():
                for secret in page.get("SecretList", []):
                    if secret["Name"].startswith(self.config.prefix):
                        names.append(secret["Name"][len(self.config.prefix) :])
        except Exception as exc:
            raise service_error("aws-secrets-manager", "list", exc, self.config) from None
        return sorted(names)
