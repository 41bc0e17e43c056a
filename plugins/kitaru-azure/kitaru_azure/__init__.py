"""Kitaru's Azure flavors. The Azure SDKs are imported when a component is first used."""

from __future__ import annotations

from kitaru.plugin import PLUGIN_API, Flavor, Register, hookimpl

KITARU_PLUGIN_API = PLUGIN_API


@hookimpl
def kitaru_register_artifact_stores(register: Register) -> None:
    register(
        Flavor(
            "artifact_store",
            "azure-blob",
            implementation="kitaru_azure.blob:AzureBlobArtifactStore",
            config="kitaru_azure.config:AzureBlobArtifactStoreConfig",
            description="an Azure Blob Storage container (block uploads, streamed reads)",
        )
    )


@hookimpl
def kitaru_register_secret_providers(register: Register) -> None:
    register(
        Flavor(
            "secret_provider",
            "azure-key-vault",
            implementation="kitaru_azure.key_vault:KeyVaultSecretProvider",
            config="kitaru_azure.config:KeyVaultConfig",
            description="Azure Key Vault",
        )
    )
