"""Connecting to a cluster with the official client, and its errors as Kitaru's."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kitaru.plugin import KitaruBackendError, backend_error
from kitaru_kubernetes.config import ClusterConnection

T = TypeVar("T")


def connect(connection: ClusterConnection) -> Any:
    """An ``ApiClient``: the pod's service account in a cluster, else the kubeconfig."""
    from kubernetes import client
    from kubernetes import config as kubeconfig
    from urllib3.util.retry import Retry

    in_cluster = connection.in_cluster
    if in_cluster is None:
        in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            kubeconfig.load_incluster_config()
            configuration = client.Configuration.get_default_copy()
        else:
            configuration = client.Configuration()
            kubeconfig.load_kube_config(
                config_file=connection.kubeconfig,
                context=connection.context,
                client_configuration=configuration,
            )
        # `call` retries what may be retried; urllib3's own default (3 more tries of
        # anything, a read timeout too) would make one hung call four.
        configuration.retries = Retry(
            total=2, connect=2, read=0, status=0, other=0, respect_retry_after_header=False
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


CONNECT_SECONDS = 5.0
READ_SECONDS = 15.0
"""Each API call's timeouts: an API server that accepts a connection and never answers
must not hold ``start()`` or a worker's pass."""
RETRIES = 3
"""Tries after the first for a call the API server answered 429 or 5xx."""
MAX_RETRY_WAIT = 10.0


def call(method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``method(*args, **kwargs)`` of a ``kubernetes`` API with timeouts; 429 and 5xx
    answers are tried again after ``Retry-After`` (else 0.5, 1, 2 s). The last error is
    raised as it came (``api_error`` words it)."""
    for attempt in range(RETRIES + 1):
        try:
            return method(*args, _request_timeout=(CONNECT_SECONDS, READ_SECONDS), **kwargs)
        except Exception as exc:
            status = status_of(exc)
            if attempt == RETRIES or not (status == 429 or (status or 0) >= 500):
                raise
            _backoff(_retry_after(exc) or 0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _backoff(seconds: float) -> None:
    time.sleep(seconds)


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        return min(float(headers.get("Retry-After", "")), MAX_RETRY_WAIT)
    except ValueError:
        return None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error (None when the server was not reached)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and status > 0 else None


def said(exc: BaseException) -> str:
    """What the API server said: its Status object's message, else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return str(message)
    return str(getattr(exc, "reason", None) or exc)


_HINTS = {
    401: "the credentials were refused; check the kubeconfig's user or the service account token",
    403: "the credentials may not do this; check the service account's Role "
    "(`kitaru kubernetes manifests`)",
    404: "it does not exist; check the namespace and names in the stack",
    409: "it exists already or was changed meanwhile; try again",
    422: "the API server refused it as invalid; check the stack's pod settings",
    429: f"the API server kept throttling (tried {RETRIES + 1} times); try again later or ask "
    "the cluster's admin about its API priority and fairness limits",
}


def api_error(exc: BaseException, resource: str, fix: str) -> KitaruBackendError:
    status = status_of(exc)
    if status is None:
        if "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower():
            fix = (
                f"the API server did not answer within {READ_SECONDS:g} s; check that it is "
                "up and not overloaded"
            )
        else:
            fix = "the cluster could not be reached; check the kubeconfig, the context and the network"
    elif status >= 500:
        fix = (
            f"the API server failed (HTTP {status}, tried {RETRIES + 1} times); check the "
            "cluster's control plane"
        )
    elif status in _HINTS:
        fix = _HINTS[status]
    return backend_error("kubernetes", resource, fix, Exception(said(exc)))
