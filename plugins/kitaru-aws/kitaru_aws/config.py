"""Config models of the AWS flavors (fields of a stack file's component)."""

from __future__ import annotations

from pydantic import Field, field_validator

from kitaru.plugin import StrictConfig


class AWSConnection(StrictConfig):
    """Where and as whom to connect; credentials default to boto3's usual chain."""

    region: str | None = Field(default=None, description="e.g. eu-west-1")
    endpoint_url: str | None = Field(default=None, description="a custom or local endpoint")
    access_key_id: str | None = Field(default=None, description="e.g. {{ secret.aws_key_id }}")
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = Field(default=None, description="a profile of ~/.aws/config")


class S3ArtifactStoreConfig(AWSConnection):
    path: str = Field(description="s3://bucket/prefix")
    multipart_threshold_mb: int = Field(default=8, ge=5, description="part size too")
    max_concurrency: int = Field(default=4, ge=1, description="parallel parts per transfer")

    @field_validator("path")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError("must look like s3://bucket/prefix")
        return value.rstrip("/")


class SecretsManagerConfig(AWSConnection):
    prefix: str = Field(default="", description="prepended to every secret name, e.g. kitaru/")
