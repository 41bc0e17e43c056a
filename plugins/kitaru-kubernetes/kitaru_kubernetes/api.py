"""Connecting to a cluster with the official client, and its errors as Kitaru's."""

from __future__ import annotations

import os
from typing import Any

from kitaru.plugin import KitaruBackendError, backend_error
from kitaru_kubernetes.config import ClusterConnection


def connect(connection: ClusterConnection) -> Any:
    """An ``ApiClient``: the pod's service account in a cluster, else the kubeconfig."""
    from kubernetes import client
    from kubernetes import config as kubeconfig

    in_cluster = connection.in_cluster
    if in_cluster is None:
        in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            kubeconfig.load_incluster_config()
            return client.ApiClient()
        configuration = client.Configuration()
        kubeconfig.load_kube_config(
            config_file=connection.kubeconfig,
            context=connection.context,
            client_configuration=configuration,
        )
        return client.ApiClient(configuration)
    except (kubeconfig.ConfigException, OSError) as exc:
        where = (
            "in-cluster credentials" if in_cluster else (connection.kubeconfig or "~/.kube/config")
        )
        raise backend_error(
            "kubernetes",
            where,
            "check the kubeconfig and context in the stack (or run inside the cluster)",
            exc,
        ) from exc


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error (None when the server was not reached)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and status > 0 else None


def api_error(exc: BaseException, resource: str, fix: str) -> KitaruBackendError:
    if status_of(exc) is None:
        fix = "the cluster could not be reached; check the kubeconfig, the context and the network"
    elif status_of(exc) in (401, 403):
        fix = "the credentials may not do this; check the service account's Role (`kitaru kubernetes manifests`)"
    reason = getattr(exc, "reason", None)
    return backend_error("kubernetes", resource, fix, (reason and Exception(reason)) or exc)
