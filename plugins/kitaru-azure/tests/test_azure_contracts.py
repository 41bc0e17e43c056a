"""The Azure flavors pass the core's contract suites against Azurite and the Key Vault fake."""

from __future__ import annotations

import uuid

import pytest

from azure_servers import Azurite, AzuriteWithOAuth, KeyVault
from kitaru.plugin import KitaruBackendError
from kitaru.testing import ArtifactStoreContract, SecretProviderContract
from kitaru_azure.blob import AzureBlobArtifactStore
from kitaru_azure.config import AzureBlobArtifactStoreConfig, KeyVaultConfig
from kitaru_azure.key_vault import KeyVaultSecretProvider


class TestAzureBlobArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(self, azurite: Azurite, container: str) -> AzureBlobArtifactStore:
        return AzureBlobArtifactStore(
            AzureBlobArtifactStoreConfig(
                path=f"az://{container}/kitaru",
                connection_string=azurite.connection_string,
                block_size_mb=1,
            )
        )


class TestAzureBlobWithDefaultAzureCredential(ArtifactStoreContract):
    """The default: no key at all, a token from DefaultAzureCredential (here through a
    managed-identity endpoint) against Azurite over HTTPS with OAuth."""

    @pytest.fixture
    def artifact_store(
        self, azurite_oauth: AzuriteWithOAuth, managed_identity: str
    ) -> AzureBlobArtifactStore:
        name = f"oauth-{uuid.uuid4().hex[:12]}"
        store = AzureBlobArtifactStore(
            AzureBlobArtifactStoreConfig(
                path=f"az://{name}/kitaru",
                account_url=azurite_oauth.url,
                connection_verify=str(azurite_oauth.cert),
                block_size_mb=1,
            )
        )
        store.container.create_container()
        return store

    def test_the_token_came_from_the_managed_identity(
        self, artifact_store: AzureBlobArtifactStore, managed_identity: str
    ) -> None:
        from azure_servers import ManagedIdentityFake

        artifact_store.put("k", b"with a token")
        assert any("resource=https" in r for r in ManagedIdentityFake.requests)


class TestKeyVault(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, key_vault: KeyVault) -> KeyVaultSecretProvider:
        return KeyVaultSecretProvider(
            KeyVaultConfig(
                vault_url=key_vault.url,
                token="test-token",
                connection_verify=str(key_vault.ca),
                verify_challenge_resource=False,
            )
        )

    def test_the_challenge_is_answered_with_the_token(
        self, secret_provider: KeyVaultSecretProvider, key_vault: KeyVault
    ) -> None:
        secret_provider.set("challenged", "v")
        assert "test-token" in key_vault.tokens()


def test_a_missing_container_is_a_backend_error_naming_it(azurite: Azurite) -> None:
    store = AzureBlobArtifactStore(
        AzureBlobArtifactStoreConfig(
            path="az://no-such-container/x", connection_string=azurite.connection_string
        )
    )
    with pytest.raises(KitaruBackendError, match="az://no-such-container/x/k"):
        store.put("k", b"data")
