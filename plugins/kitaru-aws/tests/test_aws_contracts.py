"""The AWS flavors pass the core's contract suites against moto's S3 and Secrets Manager."""

from __future__ import annotations

import pytest

from aws_servers import MotoServer
from kitaru.plugin import KitaruBackendError
from kitaru.testing import ArtifactStoreContract, SecretProviderContract
from kitaru_aws.config import S3ArtifactStoreConfig, SecretsManagerConfig
from kitaru_aws.s3 import S3ArtifactStore
from kitaru_aws.secrets_manager import SecretsManagerProvider


class TestS3ArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def artifact_store(self, moto: MotoServer, bucket: str) -> S3ArtifactStore:
        return S3ArtifactStore(
            S3ArtifactStoreConfig(
                path=f"s3://{bucket}/kitaru",
                endpoint_url=moto.url,
                region="us-east-1",
                multipart_threshold_mb=5,
            )
        )

    def test_large_writes_are_multipart(
        self, artifact_store: S3ArtifactStore, moto: MotoServer
    ) -> None:
        import io
        import os

        data = os.urandom(12 * 1024 * 1024)
        artifact_store.put("big", io.BytesIO(data))
        head = moto.client("s3").head_object(Bucket=artifact_store.bucket, Key="kitaru/big")
        assert head["ContentLength"] == len(data)
        assert head["ETag"].strip('"').endswith("-3")  # three parts of 5 MiB at most


class TestSecretsManager(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, moto: MotoServer) -> SecretsManagerProvider:
        return SecretsManagerProvider(
            SecretsManagerConfig(endpoint_url=moto.url, region="us-east-1", prefix="kitaru/")
        )

    def test_the_prefix_is_applied_in_the_service(
        self, secret_provider: SecretsManagerProvider, moto: MotoServer
    ) -> None:
        secret_provider.set("openai", "sk-1")
        assert (
            moto.client("secretsmanager").get_secret_value(SecretId="kitaru/openai")["SecretString"]
            == "sk-1"
        )


def test_a_missing_bucket_is_a_backend_error_naming_it(moto: MotoServer) -> None:
    store = S3ArtifactStore(
        S3ArtifactStoreConfig(path="s3://no-such-bucket-here/x", endpoint_url=moto.url)
    )
    with pytest.raises(KitaruBackendError, match="bucket does not exist") as info:
        store.put("k", b"data")
    assert "s3://no-such-bucket-here/x/k" in str(info.value)


def test_an_unreachable_endpoint_is_a_backend_error() -> None:
    store = S3ArtifactStore(
        S3ArtifactStoreConfig(path="s3://b/x", endpoint_url="http://127.0.0.1:9")
    )
    with pytest.raises(KitaruBackendError, match=r"cannot reach http://127\.0\.0\.1:9"):
        store.put("k", b"data")
