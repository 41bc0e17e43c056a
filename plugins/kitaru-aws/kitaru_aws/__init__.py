"""Kitaru's AWS flavors. boto3 is imported when a component is first used, never here."""

from __future__ import annotations

from kitaru.plugin import PLUGIN_API, Flavor, Register, hookimpl

KITARU_PLUGIN_API = PLUGIN_API


@hookimpl
def kitaru_register_artifact_stores(register: Register) -> None:
    register(
        Flavor(
            "artifact_store",
            "s3",
            implementation="kitaru_aws.s3:S3ArtifactStore",
            config="kitaru_aws.config:S3ArtifactStoreConfig",
            description="an S3 bucket (multipart, streamed both ways)",
        )
    )


@hookimpl
def kitaru_register_secret_providers(register: Register) -> None:
    register(
        Flavor(
            "secret_provider",
            "aws-secrets-manager",
            implementation="kitaru_aws.secrets_manager:SecretsManagerProvider",
            config="kitaru_aws.config:SecretsManagerConfig",
            description="AWS Secrets Manager",
        )
    )
