"""The built-in flavors pass the contract suites plugin authors use."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitaru_core.builtin.configs import (
    EnvSecretProviderConfig,
    LocalArtifactStoreConfig,
    LocalSecretProviderConfig,
)
from kitaru_core.builtin.local_artifact_store import LocalArtifactStore
from kitaru_core.builtin.local_orchestrator import LocalOrchestrator
from kitaru_core.builtin.local_secrets import EnvSecretProvider, LocalSecretProvider
from kitaru_core.testing import ArtifactStoreContract, OrchestratorContract, SecretProviderContract


class TestLocalArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> LocalArtifactStore:
        return LocalArtifactStore(LocalArtifactStoreConfig(path=str(tmp_path / "artifacts")))


class TestLocalSecretProvider(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, tmp_path: Path) -> LocalSecretProvider:
        return LocalSecretProvider(LocalSecretProviderConfig(path=str(tmp_path / "secrets.json")))

    def test_the_file_is_readable_by_its_owner_only(self, tmp_path: Path) -> None:
        provider = LocalSecretProvider(LocalSecretProviderConfig(path=str(tmp_path / "s.json")))
        provider.set("token", "value")
        assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o600


class TestEnvSecretProvider(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, monkeypatch: pytest.MonkeyPatch) -> EnvSecretProvider:
        monkeypatch.setenv("KITARU_CONTRACT_PREEXISTING", "x")  # restored after the test
        return EnvSecretProvider(EnvSecretProviderConfig(prefix="KITARU_CONTRACT_"))


class TestLocalOrchestrator(OrchestratorContract):
    @pytest.fixture
    def orchestrator(self) -> LocalOrchestrator:
        return LocalOrchestrator()
