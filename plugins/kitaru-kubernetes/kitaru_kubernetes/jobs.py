"""The Job that runs one execution: built as plain data, so it can be checked offline
and printed; the pod gets the metadata store's URL and other secrets from Secrets,
never written in the manifest."""

from __future__ import annotations

from typing import Any

from kitaru.plugin import ExecutionView, KitaruUsageError
from kitaru_kubernetes import patches, pods
from kitaru_kubernetes.config import KubernetesOrchestratorConfig, PodSettings
from kitaru_kubernetes.names import (
    ATTEMPT_LABEL,
    EXECUTION_LABEL,
    FLOW_LABEL,
    STORE_LABEL,
    digest,
    dns_label,
    execution_label,
    kitaru_labels,
    label_value,
)

_MERGED = ("node_selector", "env", "labels", "annotations")
_REPLACED = ("tolerations", "affinity", "active_deadline_seconds")
CONTAINER = "kitaru"
"""The run's container, by name: what a ``pod_template`` patches to change it."""


def job_name(view: ExecutionView) -> str:
    """Deterministic for one execution in one state: a repeated request for the same
    run names the same Job (the API server then answers 409), while the next run
    (after input, a timer, a recovery, a retry) gets a new one."""
    state = digest(view.exec_id, view.runs, view.status, view.ended_at, view.lease_heartbeat)
    return f"{dns_label(view.exec_id, prefix='kitaru-', max_length=40)}-{view.runs + 1}-{state[:6]}"


def pod_settings(
    config: KubernetesOrchestratorConfig, view: ExecutionView
) -> tuple[PodSettings, list[dict[str, Any]]]:
    """The stack's pod settings, then the stack's ``flows.NAME``, then the flow's own
    ``@flow(settings={"kubernetes": ...})``; maps merge key by key (resources amount by
    amount), the rest replaces. With them, each layer's ``pod_template``, in order."""
    from pydantic import ValidationError

    layers: list[PodSettings] = [config]
    if view.flow_name in config.flows:
        layers.append(config.flows[view.flow_name])
    own = view.settings.get("kubernetes")
    if own:
        try:
            layers.append(PodSettings.model_validate(own))
        except ValidationError as exc:
            raise KitaruUsageError(
                f"flow {view.flow_name!r}: settings['kubernetes'] is not valid: "
                + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ) from None
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer.resources:  # requests and limits merge amount by amount
            current = merged.setdefault("resources", {})
            for kind, amounts in layer.resources.amounts().items():
                current[kind] = {**current.get(kind, {}), **amounts}
        for field in _MERGED:
            value = getattr(layer, field)
            if value:
                merged[field] = {**merged.get(field, {}), **value}
        for field in _REPLACED:
            value = getattr(layer, field)
            if value is not None:
                merged[field] = value
    templates = [layer.pod_template for layer in layers if layer.pod_template]
    return PodSettings.model_validate(merged), templates


def job_manifest(
    config: KubernetesOrchestratorConfig,
    view: ExecutionView,
    command: list[str],
    *,
    store_id: str,
    api_access: bool,
) -> dict[str, Any]:
    """The Job of the execution's next run. ``api_access``: its pod may call the
    Kubernetes API (to read the Secrets of the kubernetes-secrets provider); else no
    token is mounted at all."""
    name = job_name(view)
    pod, templates = pod_settings(config, view)
    labels = {
        **(pod.labels or {}),  # the stack's own first: Kitaru's may not be overridden
        **kitaru_labels("run", view.stack),
        STORE_LABEL: store_id,
        EXECUTION_LABEL: execution_label(store_id, view.exec_id),
        ATTEMPT_LABEL: str(view.runs + 1),
        FLOW_LABEL: label_value(view.flow_name),
        **pods.identity_labels(config),
    }
    annotations = {**(pod.annotations or {}), "kitaru.dev/exec-id": view.exec_id}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "command": command,
        "env": [
            *pods.kitaru_env(config, view.stack),
            *({"name": k, "value": v} for k, v in sorted((pod.env or {}).items())),
        ],
    }
    if pod.resources:
        container["resources"] = pod.resources.amounts()
    spec = pods.pod_spec(
        config,
        container,
        restartPolicy="Never",
        serviceAccountName=config.service_account,
        automountServiceAccountToken=api_access,
    )
    if pod.node_selector:
        spec["nodeSelector"] = pod.node_selector
    if pod.tolerations:
        spec["tolerations"] = pod.tolerations
    if pod.affinity:
        spec["affinity"] = pod.affinity
    for template in templates:
        spec = patches.merge(spec, template)
    job_spec: dict[str, Any] = {
        "backoffLimit": config.backoff_limit,
        "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec},
    }
    if config.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished
    if pod.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = pod.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": job_spec,
    }
