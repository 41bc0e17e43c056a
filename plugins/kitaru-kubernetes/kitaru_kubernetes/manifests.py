"""What runs Kitaru in a cluster, as plain data for ``kitaru kubernetes manifests``: the
worker (a Deployment running ``kitaru worker``, or a CronJob running ``kitaru worker
--once``), optionally the server (``kitaru serve`` behind a Service and an Ingress),
and the ServiceAccounts and Roles of each, with no right one of them does not use.

Three identities: the worker (and the server, which starts runs too) creates, reads
and deletes Jobs; a run's pod (flow code) gets no Kubernetes API token at all, unless
the stack keeps its secrets in Kubernetes, and then it may read those Secrets, by name,
and no others. Every pod passes the ``restricted`` Pod Security level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kitaru_kubernetes import pods
from kitaru_kubernetes.config import KubernetesOrchestratorConfig, WorkloadIdentity
from kitaru_kubernetes.names import kitaru_labels

SERVER_PORT = 8765
WORKER_GRACE_SECONDS = 60
"""A worker told to stop hands nothing new over and ends its pass; runs are in their
own pods, so there is little to wait for."""
SERVER_GRACE_SECONDS = 30
HEARTBEAT_FILE = f"{pods.SCRATCH}/worker-alive"
HEARTBEAT_STALE_SECONDS = 120
"""The worker touches its heartbeat file on every pass (at least each ``--poll``); a
file this old means a stuck worker, which the kubelet restarts."""
CRONJOB_DEADLINE_SECONDS = 600
"""How long one ``kitaru worker --once`` may take before the Job controller stops it."""


@dataclass(frozen=True)
class Deployment:
    """What to write, besides the stack's orchestrator settings."""

    stack: str
    secret_names: list[str] = field(default_factory=list)
    """The Kubernetes Secrets the pods may read (the stack keeps its secrets in
    Kubernetes); empty: no pod gets any right on Secrets, nor a token to ask."""
    cronjob: bool = False
    schedule: str = "* * * * *"
    replicas: int = 1
    server: bool = False
    server_replicas: int = 1
    ingress_host: str | None = None
    flows: list[str] = field(default_factory=list)
    """Modules or scripts whose flows the server may start (``kitaru serve --flows``)."""


def manifests(config: KubernetesOrchestratorConfig, plan: Deployment) -> list[dict[str, Any]]:
    worker_account = config.worker_service_account
    documents = [
        _service_account(config, plan, worker_account, "worker", token=True),
        _role(config, plan, "kitaru-worker", "worker", _worker_rules(plan)),
        _binding(config, plan, "kitaru-worker", "worker", worker_account),
        _service_account(
            config, plan, config.service_account, "run", token=bool(plan.secret_names)
        ),
    ]
    if plan.secret_names:
        rules = [_secret_rule(plan, ["get"])]
        documents += [
            _role(config, plan, "kitaru-run", "run", rules),
            _binding(config, plan, "kitaru-run", "run", config.service_account),
        ]
    documents += _worker(config, plan)
    if plan.server:
        documents += _server(config, plan)
    return documents


# -- identities ------------------------------------------------------------------------


def _worker_rules(plan: Deployment) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        # Why the Job controller could not create a run's pod (FailedCreate).
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]
    if plan.secret_names:
        # get: the stack's secrets; patch and create: `secrets.set` of the signing key
        # the first time (create cannot be limited to names: Kubernetes checks names
        # only on objects that exist).
        rules += [
            _secret_rule(plan, ["get", "patch"]),
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        ]
    return rules


def _secret_rule(plan: Deployment, verbs: list[str]) -> dict[str, Any]:
    return {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": sorted(set(plan.secret_names)),
        "verbs": verbs,
    }


def identity_annotations(identity: WorkloadIdentity | None) -> dict[str, str]:
    """What makes a ServiceAccount's pods take a cloud identity, per cloud."""
    if identity is None:
        return {}
    if identity.aws_role_arn:
        return {"eks.amazonaws.com/role-arn": identity.aws_role_arn}
    if identity.gcp_service_account:
        return {"iam.gke.io/gcp-service-account": identity.gcp_service_account}
    assert identity.azure_client_id is not None
    return {"azure.workload.identity/client-id": identity.azure_client_id}


def _meta(
    config: KubernetesOrchestratorConfig, plan: Deployment, name: str, component: str
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": config.namespace,
        "labels": kitaru_labels(component, plan.stack),
    }


def _service_account(
    config: KubernetesOrchestratorConfig,
    plan: Deployment,
    name: str,
    component: str,
    *,
    token: bool,
) -> dict[str, Any]:
    meta = _meta(config, plan, name, component)
    annotations = identity_annotations(config.workload_identity)
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        "automountServiceAccountToken": token,
    }


def _role(
    config: KubernetesOrchestratorConfig,
    plan: Deployment,
    name: str,
    component: str,
    rules: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(config, plan, name, component),
        "rules": rules,
    }


def _binding(
    config: KubernetesOrchestratorConfig,
    plan: Deployment,
    name: str,
    component: str,
    account: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(config, plan, name, component),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": config.namespace}],
    }


# -- workloads -------------------------------------------------------------------------


def _pod(
    config: KubernetesOrchestratorConfig,
    plan: Deployment,
    container: dict[str, Any],
    *,
    restart: str,
    grace: int,
    holds_database: bool = False,
) -> dict[str, Any]:
    env = pods.kitaru_env(config, plan.stack, holds_database=holds_database)
    return pods.pod_spec(
        config,
        {**container, "env": env},
        serviceAccountName=config.worker_service_account,
        restartPolicy=restart,
        terminationGracePeriodSeconds=grace,
    )


def _worker(config: KubernetesOrchestratorConfig, plan: Deployment) -> list[dict[str, Any]]:
    labels = {**kitaru_labels("worker", plan.stack), **pods.identity_labels(config)}
    selector = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    selector["app.kubernetes.io/component"] = "worker"
    meta = _meta(config, plan, "kitaru-worker", "worker")
    resources = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    if plan.cronjob:
        container = {
            "name": "worker",
            "command": ["kitaru", "worker", "--once"],
            "resources": resources,
        }
        pod = _pod(config, plan, container, restart="Never", grace=WORKER_GRACE_SECONDS)
        return [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": meta,
                "spec": {
                    "schedule": plan.schedule,
                    "concurrencyPolicy": "Forbid",
                    # A slot missed by more than a period is skipped, not run late in a pile.
                    "startingDeadlineSeconds": 60,
                    "successfulJobsHistoryLimit": 1,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "backoffLimit": 0,
                            "activeDeadlineSeconds": CRONJOB_DEADLINE_SECONDS,
                            "ttlSecondsAfterFinished": 3600,
                            "template": {"metadata": {"labels": labels}, "spec": pod},
                        },
                    },
                },
            }
        ]
    stale = (
        "import os, sys, time; sys.exit(time.time() - os.path.getmtime("
        f"{HEARTBEAT_FILE!r}) > {HEARTBEAT_STALE_SECONDS})"
    )
    container = {
        "name": "worker",
        "command": ["kitaru", "worker", "--heartbeat-file", HEARTBEAT_FILE],
        "resources": resources,
        "livenessProbe": {
            "exec": {"command": [config.python, "-c", stale]},
            "initialDelaySeconds": 30,
            "periodSeconds": 30,
            "timeoutSeconds": 10,
            "failureThreshold": 3,
        },
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": plan.replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod(
                        config, plan, container, restart="Always", grace=WORKER_GRACE_SECONDS
                    ),
                },
            },
        },
        _disruption_budget(config, plan, "kitaru-worker", "worker", selector),
    ]


def _server(config: KubernetesOrchestratorConfig, plan: Deployment) -> list[dict[str, Any]]:
    labels = {**kitaru_labels("server", plan.stack), **pods.identity_labels(config)}
    selector = {
        "app.kubernetes.io/name": "kitaru",
        "app.kubernetes.io/instance": labels["app.kubernetes.io/instance"],
        "app.kubernetes.io/component": "server",
    }
    flows = [arg for module in plan.flows for arg in ("--flows", module)]
    container = {
        "name": "server",
        # The worker Deployment runs due work; the server answers requests only.
        "command": [
            "kitaru",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(SERVER_PORT),
            "--no-worker",
            *flows,
        ],
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        # Ready when it and its database answer; alive while it accepts connections
        # (a database restart must not restart every server pod with it).
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
        },
    }
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(config, plan, "kitaru-server", "server"),
            "spec": {
                "replicas": plan.server_replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    # The one pod that holds the database's credentials.
                    "spec": _pod(
                        config,
                        plan,
                        container,
                        restart="Always",
                        grace=SERVER_GRACE_SECONDS,
                        holds_database=True,
                    ),
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(config, plan, "kitaru-server", "server"),
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        _disruption_budget(config, plan, "kitaru-server", "server", selector),
    ]
    if plan.ingress_host:
        backend = {"service": {"name": "kitaru-server", "port": {"name": "http"}}}
        documents.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": _meta(config, plan, "kitaru-server", "server"),
                "spec": {
                    "rules": [
                        {
                            "host": plan.ingress_host,
                            "http": {
                                "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]
                            },
                        }
                    ]
                },
            }
        )
    return documents


def _disruption_budget(
    config: KubernetesOrchestratorConfig,
    plan: Deployment,
    name: str,
    component: str,
    selector: dict[str, str],
) -> dict[str, Any]:
    """A drain takes one pod of it at a time (never blocked for good, as
    ``minAvailable: 1`` would block a Deployment of one)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(config, plan, name, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
