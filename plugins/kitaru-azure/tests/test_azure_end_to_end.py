"""The review example on an Azure stack, chosen by `kitaru stack register` + `activate`
alone: artifacts land in the container, the storage connection string and the LLM key
both come from Key Vault."""

from __future__ import annotations

from pathlib import Path

import pytest

from azure_servers import Azurite, KeyVault
from kitaru import KitaruClient
from kitaru.testing import (
    FakeLLM,
    check_artifacts_stored,
    end_to_end_on_stack,
    llm_gateway_yaml,
    store_outage,
)
from kitaru_azure.config import KeyVaultConfig
from kitaru_azure.key_vault import KeyVaultSecretProvider

KEY = "sk-from-azure-key-vault-9012"


@pytest.fixture
def azure_stack(
    tmp_path: Path,
    azurite: Azurite,
    container: str,
    key_vault: KeyVault,
    fake_llm: FakeLLM,
    kitaru_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    vault = KeyVaultSecretProvider(
        KeyVaultConfig(
            vault_url=key_vault.url,
            token="test-token",
            connection_verify=str(key_vault.ca),
            verify_challenge_resource=False,
        )
    )
    vault.set("openai-api-key", KEY)  # as `az keyvault secret set` would
    vault.set("storage-connection", azurite.connection_string)
    monkeypatch.setenv("KEY_VAULT_TOKEN", "test-token")
    path = tmp_path / "azure-test.yaml"
    path.write_text(
        f"""
name: azure-test
artifact_store:
  flavor: azure-blob
  path: az://{container}/kitaru
  connection_string: "{{{{ secret.storage-connection }}}}"
  retries: 0
secret_provider:
  flavor: azure-key-vault
  vault_url: {key_vault.url}
  token: ${{KEY_VAULT_TOKEN}}
  connection_verify: {key_vault.ca}
  verify_challenge_resource: false
"""
        + llm_gateway_yaml(fake_llm, "openai-api-key")
    )
    return path


def test_the_review_flow_on_azure(
    azure_stack: Path, azurite: Azurite, container: str, fake_llm: FakeLLM
) -> None:
    executions = end_to_end_on_stack(azure_stack, fake_llm)
    assert set(fake_llm.authorizations()) == {f"Bearer {KEY}"}
    client = azurite.service().get_container_client(container)
    stored = set(client.list_blob_names(name_starts_with="kitaru/"))
    check_artifacts_stored(executions, f"az://{container}/", stored)
    [draft] = KitaruClient().artifacts.list(executions[0], name="draft")
    blob = client.download_blob(draft.uri.removeprefix(f"az://{container}/")).readall()
    assert blob.decode() == draft.load()


def test_a_stopped_server_fails_the_run_and_a_retry_completes_once_it_is_back(
    azure_stack: Path, azurite: Azurite, container: str
) -> None:
    def restart() -> None:
        azurite.start()
        azurite.service().create_container(container)  # in-memory Azurite kept nothing

    ref = store_outage(azure_stack, azurite.stop, restart)
    client = azurite.service().get_container_client(container)
    assert (
        client.get_blob_client(ref.uri.removeprefix(f"az://{container}/"))
        .get_blob_properties()
        .size
        == 20000
    )
