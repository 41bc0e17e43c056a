"""Kitaru's Google Cloud flavors. The SDKs are imported when a component is first used."""

from __future__ import annotations

from kitaru.plugin import PLUGIN_API, Flavor, Register, hookimpl

KITARU_PLUGIN_API = PLUGIN_API


@hookimpl
def kitaru_register_artifact_stores(register: Register) -> None:
    register(
        Flavor(
            "artifact_store",
            "gcs",
            implementation="kitaru_gcp.gcs:GCSArtifactStore",
            config="kitaru_gcp.config:GCSArtifactStoreConfig",
            description="a Google Cloud Storage bucket (streamed both ways)",
        )
    )


@hookimpl
def kitaru_register_secret_providers(register: Register) -> None:
    register(
        Flavor(
            "secret_provider",
            "gcp-secret-manager",
            implementation="kitaru_gcp.secret_manager:GCPSecretManagerProvider",
            config="kitaru_gcp.config:GCPSecretManagerConfig",
            description="Google Secret Manager (latest version by default)",
        )
    )
