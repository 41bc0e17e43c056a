"""The Google Cloud flavors pass the core's contract suites."""

from __future__ import annotations

import pytest

from gcp_servers import PROJECT, FakeGCSServer
from kitaru.plugin import KitaruBackendError
from kitaru.testing import ArtifactStoreContract, SecretProviderContract
from kitaru_gcp.config import GCPSecretManagerConfig, GCSArtifactStoreConfig
from kitaru_gcp.gcs import GCSArtifactStore
from kitaru_gcp.secret_manager import GCPSecretManagerProvider


class TestGCSArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(self, gcs: FakeGCSServer, bucket: str) -> GCSArtifactStore:
        return GCSArtifactStore(
            GCSArtifactStoreConfig(
                path=f"gs://{bucket}/kitaru",
                project=PROJECT,
                endpoint=gcs.url,
                anonymous=True,
                chunk_size_mb=1,
            )
        )


class TestGCPSecretManager(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, secret_manager: str) -> GCPSecretManagerProvider:
        return GCPSecretManagerProvider(
            GCPSecretManagerConfig(
                project=PROJECT, endpoint=secret_manager, anonymous=True, prefix="kitaru-"
            )
        )

    def test_latest_version_wins(self, secret_provider: GCPSecretManagerProvider) -> None:
        secret_provider.set("rotating", "v1")
        secret_provider.set("rotating", "v2")
        assert secret_provider.get("rotating") == "v2"


def test_a_missing_bucket_is_a_backend_error_naming_it(gcs: FakeGCSServer) -> None:
    store = GCSArtifactStore(
        GCSArtifactStoreConfig(
            path="gs://no-such-bucket-here/x", project=PROJECT, endpoint=gcs.url, anonymous=True
        )
    )
    with pytest.raises(KitaruBackendError, match="gs://no-such-bucket-here/x/k"):
        store.put("k", b"data")
