"""What runs the worker in a cluster: a Deployment running ``kitaru worker`` (or a
CronJob running ``kitaru worker --once``), its ServiceAccount, and a Role that lets it
and the Jobs it starts do what they need in the namespace, and no more."""

from __future__ import annotations

from typing import Any

from kitaru_kubernetes.config import KubernetesOrchestratorConfig
from kitaru_kubernetes.names import MANAGED_BY

RULES = [
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    # The kubernetes-secrets provider, for provider keys resolved inside the pods.
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get", "list", "create", "update", "delete"],
    },
]


def worker_manifests(
    config: KubernetesOrchestratorConfig,
    stack: str,
    *,
    cronjob: bool = False,
    schedule: str = "* * * * *",
    replicas: int = 1,
) -> list[dict[str, Any]]:
    namespace = config.namespace
    account = config.service_account or "kitaru-worker"
    labels = {**MANAGED_BY, "app.kubernetes.io/name": "kitaru-worker"}
    meta = {"namespace": namespace, "labels": labels}
    env = [
        {"name": "KITARU_STACK", "value": stack},
        {
            "name": "KITARU_DATABASE_URL",
            "valueFrom": {
                "secretKeyRef": {
                    "name": config.database_url_secret.name,
                    "key": config.database_url_secret.key,
                }
            },
        },
        *(
            {"name": var, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            for var, ref in sorted(config.secret_env.items())
        ),
    ]
    container = {
        "name": "worker",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["kitaru", "worker", *(["--once"] if cronjob else [])],
        "env": env,
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
    }
    pod: dict[str, Any] = {
        "serviceAccountName": account,
        "containers": [container],
        "restartPolicy": "OnFailure" if cronjob else "Always",
    }
    if config.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    template = {"metadata": {"labels": labels}, "spec": pod}
    runner: dict[str, Any]
    if cronjob:
        runner = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "kitaru-worker", **meta},
            "spec": {
                "schedule": schedule,
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"backoffLimit": 0, "template": template}},
            },
        }
    else:
        runner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "kitaru-worker", **meta},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "kitaru-worker"}},
                # SIGTERM lets running dispatches finish; give them time.
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {**pod, "terminationGracePeriodSeconds": 120},
                },
            },
        }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "kitaru-worker", **meta},
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "kitaru-worker", **meta},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "kitaru-worker",
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
        runner,
    ]
