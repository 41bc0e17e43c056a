"""Config models of the Kubernetes flavors (fields of a stack file's component).

What Kubernetes would refuse, or silently drop, is refused here, at ``kitaru stack
register``: an unknown field (a real API server drops it with a warning), a quantity
that is not one, a label Kubernetes or Kitaru would not accept.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kitaru.plugin import StrictConfig
from kitaru_kubernetes import fields
from kitaru_kubernetes.names import (
    RESERVED_LABEL_PREFIXES,
    check_dns_label,
    check_env_name,
    check_label_value,
    check_qualified_name,
    check_quantity,
)


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
        return check_dns_label(value, "namespace")


class SecretKeyRef(StrictConfig):
    """A key of a Kubernetes Secret in the namespace."""

    name: str
    key: str

    @field_validator("name")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        return check_dns_label(value, "Secret name")


class Resources(StrictConfig):
    """A container's ``requests`` and ``limits``: amounts by resource name."""

    requests: dict[str, str | int | float] | None = None
    limits: dict[str, str | int | float] | None = None

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, amounts: dict[str, Any] | None) -> dict[str, str] | None:
        if amounts is None:
            return None
        return {
            check_qualified_name(name, "resource name"): check_quantity(amount, name)
            for name, amount in amounts.items()
        }

    def amounts(self) -> dict[str, dict[str, str]]:
        given = (("requests", self.requests), ("limits", self.limits))
        return {kind: {k: str(a) for k, a in amounts.items()} for kind, amounts in given if amounts}


class PodSettings(StrictConfig):
    """What a flow may override per flow name (``flows:``) or in ``@flow(settings=...)``."""

    resources: Resources | None = Field(
        default=None, description="requests and limits, e.g. {limits: {nvidia.com/gpu: 1}}"
    )
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    env: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    pod_template: dict[str, Any] | None = Field(
        default=None,
        description="a strategic-merge patch of the pod spec (volumes, sidecars, init "
        "containers, security settings); Kitaru's container is named 'kitaru'",
    )

    @field_validator("node_selector")
    @classmethod
    def _selector(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, label in (value or {}).items():
            check_qualified_name(key, "node_selector key")
            check_label_value(label, f"node_selector[{key!r}]")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, label in (value or {}).items():
            check_qualified_name(key, "label")
            if key.startswith(RESERVED_LABEL_PREFIXES):
                raise ValueError(
                    f"label {key!r} is set by Kitaru (it finds its Jobs by it); use another name"
                )
            check_label_value(label, f"label {key!r}")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            check_qualified_name(key, "annotation")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in value or {}:
            check_env_name(name)
        return value

    @model_validator(mode="after")
    def _known_fields(self) -> PodSettings:
        for items, model, where in (
            ([t for t in self.tolerations or []], "V1Toleration", "tolerations[]"),
            ([self.affinity] if self.affinity else [], "V1Affinity", "affinity"),
            ([self.pod_template] if self.pod_template else [], "V1PodSpec", "pod_template"),
        ):
            for item in items:
                fields.check_known(item, model, where)
        return self


class WorkloadIdentity(StrictConfig):
    """The cloud identity the pods' ServiceAccounts take (one of the three)."""

    aws_role_arn: str | None = Field(default=None, description="IRSA on EKS")
    gcp_service_account: str | None = Field(
        default=None, description="GKE Workload Identity: a Google service account's email"
    )
    azure_client_id: str | None = Field(
        default=None, description="Azure Workload Identity: a managed identity's client id"
    )

    @model_validator(mode="after")
    def _one(self) -> WorkloadIdentity:
        given = [k for k, v in self.model_dump().items() if v]
        if len(given) != 1:
            raise ValueError(
                "workload_identity takes exactly one of aws_role_arn, gcp_service_account, "
                f"azure_client_id (given: {', '.join(given) or 'none'})"
            )
        return self


class KubernetesOrchestratorConfig(ClusterConnection, PodSettings):
    image: str = Field(description="an image with Kitaru, its plugins and your project")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_account: str = Field(
        default="kitaru-run",
        description="the runs' ServiceAccount: no Kubernetes API rights unless the stack "
        "keeps secrets in Kubernetes (then it may read those Secrets, by name)",
    )
    worker_service_account: str = Field(
        default="kitaru-worker", description="the worker's: it creates and deletes Jobs"
    )
    workload_identity: WorkloadIdentity | None = Field(
        default=None, description="the cloud identity the runs and the worker take"
    )
    pod_secrets: list[str] = Field(
        default_factory=list,
        description="Kitaru secrets the runs read besides those the stack file names "
        "(kubernetes-secrets: the Role lets them read these Secrets and no others)",
    )
    database_url_secret: SecretKeyRef | None = Field(
        default=None,
        description="the Secret key holding KITARU_DATABASE_URL (never written in a Job); "
        "with server_url only the server's pod reads it",
    )
    server_url: str | None = Field(
        default=None,
        description="a `kitaru serve` the runs and the worker record through instead of the "
        "database (KITARU_SERVER_URL), e.g. http://kitaru-server:8765 in the cluster",
    )
    server_token_secret: SecretKeyRef | None = Field(
        default=None,
        description="with server_url: the Secret key holding the API token (scope run) the "
        "runs and the worker send (KITARU_TOKEN)",
    )
    secret_env: dict[str, SecretKeyRef] = Field(
        default_factory=dict, description="more environment variables from Secrets"
    )
    backoff_limit: int = Field(default=0, ge=0, description="0: Kitaru retries, not the Job")
    ttl_seconds_after_finished: int | None = Field(default=3600, ge=0)
    pending_timeout: float = Field(
        default=600.0,
        ge=1,
        description="seconds a run's pod may stay Pending (unschedulable, or not created) "
        "before the execution fails with the reason",
    )
    python: str = Field(default="python", description="the interpreter in the image")

    @model_validator(mode="after")
    def _a_way_to_the_metadata(self) -> KubernetesOrchestratorConfig:
        if self.server_url is None and self.server_token_secret is not None:
            raise ValueError("server_token_secret is the token for server_url: set both")
        if self.server_url is not None:
            if not self.server_url.startswith(("http://", "https://")):
                raise ValueError(
                    f"server_url {self.server_url!r} must be an http:// or https:// address"
                )
            if self.server_token_secret is None:
                raise ValueError(
                    "server_url needs server_token_secret: the Secret key holding an API "
                    "token of scope run (`kitaru tokens create NAME --scope run`)"
                )
        elif self.database_url_secret is None:
            raise ValueError(
                "the pods need a way to the metadata store: database_url_secret (the Secret "
                "key holding KITARU_DATABASE_URL), or server_url and server_token_secret"
            )
        return self

    flows: dict[str, PodSettings] = Field(
        default_factory=dict, description="settings per flow name (a GPU flow on GPU nodes)"
    )

    @field_validator("service_account", "worker_service_account", "image_pull_secrets")
    @classmethod
    def _names(cls, value: Any) -> Any:
        for name in value if isinstance(value, list) else [value]:
            check_dns_label(name, "name")
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: dict[str, SecretKeyRef]) -> dict[str, SecretKeyRef]:
        for name in value:
            check_env_name(name)
        return value


class KubernetesSecretsConfig(ClusterConnection):
    key: str = Field(default="value", description="the data key holding each value")
    label: str = Field(
        default="kitaru.dev/secret", description="the label that marks Kitaru's Secrets"
    )
    prefix: str = Field(default="kitaru-", description="prepended to every Secret name")
