"""Kitaru's Azure flavors. The Azure SDKs are imported when a component is first used."""

from __future__ import annotations

import kitaru
from kitaru_core.flavors import Flavor
from kitaru_core.hookspecs import Register

KITARU_PLUGIN_API = 1


@kitaru.hookimpl
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


@kitaru.hookimpl
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
