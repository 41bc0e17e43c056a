"""Config models of the Azure flavors."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from kitaru.plugin import StrictConfig


class AzureBlobArtifactStoreConfig(StrictConfig):
    """Authenticates with DefaultAzureCredential unless a connection string or account
    key is given (through a secret reference: ``{{ secret.storage_connection }}``)."""

    path: str = Field(description="az://container/prefix")
    account_url: str | None = Field(
        default=None, description="https://ACCOUNT.blob.core.windows.net"
    )
    connection_string: str | None = None
    account_key: str | None = None
    connection_verify: str | None = Field(
        default=None, description="a CA bundle for a private endpoint"
    )
    max_concurrency: int = Field(default=4, ge=1)
    retries: int = Field(default=3, ge=0, description="retries of a failing request")
    block_size_mb: int = Field(default=8, ge=1)

    @field_validator("path")
    @classmethod
    def _az_url(cls, value: str) -> str:
        if not value.startswith("az://") or len(value) <= len("az://"):
            raise ValueError("must look like az://container/prefix")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _where(self) -> AzureBlobArtifactStoreConfig:
        if not self.connection_string and not self.account_url:
            raise ValueError("give account_url (or a connection_string)")
        return self


class KeyVaultConfig(StrictConfig):
    """Authenticates with DefaultAzureCredential, or a bearer ``token`` (``${ENV}``)."""

    vault_url: str = Field(description="https://VAULT.vault.azure.net")
    token: str | None = Field(
        default=None, description="a bearer token instead of DefaultAzureCredential"
    )
    connection_verify: str | None = Field(
        default=None, description="a CA bundle for a private endpoint"
    )
    verify_challenge_resource: bool = Field(
        default=True, description="check the 401 challenge names the vault's domain"
    )
    purge_on_delete: bool = Field(
        default=True, description="purge deleted secrets so their names can be used again"
    )
