"""The kubernetes-secrets provider passes the core's contract suite against the API."""

from __future__ import annotations

import pytest

from k8s_cluster import NAMESPACE, Cluster
from kitaru.testing import SecretProviderContract
from kitaru_kubernetes.config import KubernetesSecretsConfig
from kitaru_kubernetes.secrets import KubernetesSecretProvider


class TestKubernetesSecrets(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, cluster: Cluster) -> KubernetesSecretProvider:
        return KubernetesSecretProvider(
            KubernetesSecretsConfig(kubeconfig=str(cluster.kubeconfig), namespace=NAMESPACE)
        )

    def test_a_name_kubernetes_would_refuse_is_stored_under_a_safe_one(
        self, secret_provider: KubernetesSecretProvider, cluster: Cluster
    ) -> None:
        secret_provider.set("openai_api_key/prod", "sk-1")
        assert secret_provider.get("openai_api_key/prod") == "sk-1"
        assert secret_provider.list() == ["openai_api_key/prod"]
        [stored] = [s for s in cluster.core.list_namespaced_secret(NAMESPACE).items]
        assert stored.metadata.name.startswith("kitaru-openai-api-key-prod-")
        assert stored.type == "Opaque" and "sk-1" not in str(stored.metadata)

    def test_secrets_without_the_label_are_not_listed(
        self, secret_provider: KubernetesSecretProvider, cluster: Cluster
    ) -> None:
        cluster.secret("someone-else", "x")
        secret_provider.set("mine", "y")
        assert secret_provider.list() == ["mine"]
