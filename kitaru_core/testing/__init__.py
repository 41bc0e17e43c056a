"""Contract suites for plugin authors: subclass one per component type in your tests.

    from kitaru_core.testing import ArtifactStoreContract

    class TestMyStore(ArtifactStoreContract):
        @pytest.fixture
        def artifact_store(self, tmp_path):
            return MyStore(MyStoreConfig(path=...))

The first-party flavors prove themselves with the same suites.
"""

from kitaru_core.testing.contracts import (
    ArtifactStoreContract,
    OrchestratorContract,
    SecretProviderContract,
)

__all__ = ["ArtifactStoreContract", "OrchestratorContract", "SecretProviderContract"]
