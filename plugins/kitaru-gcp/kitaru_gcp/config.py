"""Config models of the Google Cloud flavors."""

from __future__ import annotations

from pydantic import Field, field_validator

from kitaru.plugin import StrictConfig


class GCPConnection(StrictConfig):
    """Credentials default to Application Default Credentials (the usual chain)."""

    project: str | None = Field(default=None, description="the Google Cloud project id")
    endpoint: str | None = Field(default=None, description="a custom or local API endpoint")
    credentials_json: str | None = Field(
        default=None, description="a service account key, e.g. {{ secret.gcp_service_account }}"
    )
    anonymous: bool = Field(default=False, description="no credentials (local emulators only)")


class GCSArtifactStoreConfig(GCPConnection):
    path: str = Field(description="gs://bucket/prefix")
    chunk_size_mb: int = Field(default=8, ge=1, description="resumable upload and read chunks")
    retry_deadline: float = Field(
        default=60.0, gt=0, description="seconds to keep retrying a failing request"
    )

    @field_validator("path")
    @classmethod
    def _gs_url(cls, value: str) -> str:
        if not value.startswith("gs://") or len(value) <= len("gs://"):
            raise ValueError("must look like gs://bucket/prefix")
        return value.rstrip("/")


class GCPSecretManagerConfig(GCPConnection):
    project: str = Field(description="the project that holds the secrets")  # type: ignore[assignment]
    prefix: str = Field(default="", description="prepended to every secret name")
    version: str = Field(default="latest", description="which version get() reads")
