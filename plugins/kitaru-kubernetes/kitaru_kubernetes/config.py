"""Config models of the Kubernetes flavors (fields of a stack file's component)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from kitaru.plugin import StrictConfig


class ClusterConnection(StrictConfig):
    """Which cluster: in-cluster credentials inside a pod, else a kubeconfig context."""

    kubeconfig: str | None = Field(default=None, description="path; default: ~/.kube/config")
    context: str | None = Field(default=None, description="a context of the kubeconfig")
    in_cluster: bool | None = Field(
        default=None, description="use the pod's service account (default: when in a pod)"
    )
    namespace: str = Field(default="default", description="where Jobs and Secrets live")

    @field_validator("namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        from kitaru_kubernetes.names import check_dns_label

        return check_dns_label(value, "namespace")


class SecretKeyRef(StrictConfig):
    """A key of a Kubernetes Secret in the namespace."""

    name: str
    key: str


class PodSettings(StrictConfig):
    """What a flow may override per flow name (``flows:``) or in ``@flow(settings=...)``."""

    resources: dict[str, dict[str, str | int]] | None = Field(
        default=None, description="requests and limits, e.g. {limits: {nvidia.com/gpu: 1}}"
    )
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    env: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    active_deadline_seconds: int | None = Field(default=None, ge=1)


class KubernetesOrchestratorConfig(ClusterConnection, PodSettings):
    image: str = Field(description="an image with Kitaru, its plugins and your project")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_account: str | None = Field(default=None, description="the pods' service account")
    database_url_secret: SecretKeyRef = Field(
        description="the Secret key holding KITARU_DATABASE_URL (never written in a Job)"
    )
    secret_env: dict[str, SecretKeyRef] = Field(
        default_factory=dict, description="more environment variables from Secrets"
    )
    backoff_limit: int = Field(default=0, ge=0, description="0: Kitaru retries, not the Job")
    ttl_seconds_after_finished: int | None = Field(default=3600, ge=0)
    python: str = Field(default="python", description="the interpreter in the image")
    flows: dict[str, PodSettings] = Field(
        default_factory=dict, description="settings per flow name (a GPU flow on GPU nodes)"
    )


class KubernetesSecretsConfig(ClusterConnection):
    key: str = Field(default="value", description="the data key holding each value")
    label: str = Field(
        default="kitaru.dev/secret", description="the label that marks Kitaru's Secrets"
    )
    prefix: str = Field(default="kitaru-", description="prepended to every Secret name")
