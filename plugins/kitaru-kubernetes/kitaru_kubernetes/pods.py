"""What every pod Kitaru writes (a run's, the worker's, the server's) has: the image, the
environment that reaches the metadata store, and the ``restricted`` Pod Security level
(non-root, no privilege escalation, no capabilities, the runtime's seccomp profile)
with a read-only root filesystem and an ``emptyDir`` at ``/tmp`` for what must be
written (``HOME`` and ``KITARU_HOME`` point there). A stack changes any of it with
``pod_template``."""

from __future__ import annotations

from typing import Any

from kitaru_kubernetes.config import KubernetesOrchestratorConfig

RUN_AS = 65532
"""A user id with no name in most images (distroless's "nonroot"): ``runAsNonRoot``
needs a numeric user, and an image's root user would be refused."""
SCRATCH = "/tmp"


def from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def kitaru_env(config: KubernetesOrchestratorConfig, stack: str) -> list[dict[str, Any]]:
    """The stack, the metadata store's URL and the stack's ``secret_env`` from their
    Secrets (never written in a manifest), and where to write."""
    database = config.database_url_secret
    return [
        {"name": "KITARU_STACK", "value": stack},
        from_secret("KITARU_DATABASE_URL", database.name, database.key),
        *(from_secret(var, ref.name, ref.key) for var, ref in sorted(config.secret_env.items())),
        {"name": "HOME", "value": SCRATCH},
        {"name": "KITARU_HOME", "value": f"{SCRATCH}/kitaru"},
    ]


def identity_labels(config: KubernetesOrchestratorConfig) -> dict[str, str]:
    """What a pod carries to take the stack's cloud identity (Azure's webhook mounts its
    token only into pods so labelled; IRSA and GKE need only the ServiceAccount's
    annotation)."""
    if config.workload_identity and config.workload_identity.azure_client_id:
        return {"azure.workload.identity/use": "true"}
    return {}


def pod_spec(
    config: KubernetesOrchestratorConfig, container: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """A pod spec of one container (``container`` plus the image and the hardening),
    with ``fields`` (``restartPolicy``, ``serviceAccountName``, ...)."""
    hardened = {
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        **container,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": SCRATCH}],
    }
    spec: dict[str, Any] = {
        **fields,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [hardened],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    return spec
