"""What every pod Kitaru writes (a run's, the worker's, the server's) has: the image, the
environment that reaches the metadata store, and the ``restricted`` Pod Security level
(non-root, no privilege escalation, no capabilities, the runtime's seccomp profile)
with a read-only root filesystem and an ``emptyDir`` at ``/tmp`` for what must be
written (``HOME`` and ``KITARU_HOME`` point there). A stack changes any of it with
``pod_template``."""

from __future__ import annotations

from typing import Any

from kitaru.plugin import KitaruStackError
from kitaru_kubernetes.config import KubernetesOrchestratorConfig

RUN_AS = 65532
"""A user id with no name in most images (distroless's "nonroot"): ``runAsNonRoot``
needs a numeric user, and an image's root user would be refused."""
SCRATCH = "/tmp"


def from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def kitaru_env(
    config: KubernetesOrchestratorConfig, stack: str, *, holds_database: bool = False
) -> list[dict[str, Any]]:
    """The stack, the way to the metadata store and the stack's ``secret_env`` from
    their Secrets (never written in a manifest), and where to write.

    With ``server_url`` a pod gets the server's URL and a token, not the database's
    URL: only the server's own pod (``holds_database``) reads that."""
    if config.server_url is not None and not holds_database:
        token = config.server_token_secret
        assert token is not None  # the config's validator pairs them
        store = [
            {"name": "KITARU_SERVER_URL", "value": config.server_url},
            from_secret("KITARU_TOKEN", token.name, token.key),
        ]
    elif config.database_url_secret is not None:
        database = config.database_url_secret
        store = [from_secret("KITARU_DATABASE_URL", database.name, database.key)]
    else:
        raise KitaruStackError(
            "the server's pod needs the database: set database_url_secret in the stack's "
            "orchestrator (the Secret key holding KITARU_DATABASE_URL)"
        )
    return [
        {"name": "KITARU_STACK", "value": stack},
        *store,
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
