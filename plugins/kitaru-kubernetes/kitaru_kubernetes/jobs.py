"""The Job that runs one execution: built as plain data, so it can be checked offline
and printed; the pod gets the metadata store's URL and other secrets from Secrets,
never written in the manifest."""

from __future__ import annotations

from typing import Any

from kitaru.plugin import ExecutionView, KitaruUsageError
from kitaru_kubernetes.config import KubernetesOrchestratorConfig, PodSettings
from kitaru_kubernetes.names import (
    ATTEMPT_LABEL,
    EXECUTION_LABEL,
    MANAGED_BY,
    digest,
    dns_label,
    execution_label,
)

_MERGED = ("resources", "node_selector", "env", "labels", "annotations")
_REPLACED = ("tolerations", "affinity", "active_deadline_seconds")


def job_name(view: ExecutionView) -> str:
    """Deterministic for one execution in one state: a repeated request for the same
    run names the same Job (the API server then answers 409), while the next run
    (after input, a timer, a recovery, a retry) gets a new one."""
    state = digest(view.exec_id, view.runs, view.status, view.ended_at, view.lease_heartbeat)
    return f"{dns_label(view.exec_id, prefix='kitaru-', max_length=40)}-{view.runs + 1}-{state[:6]}"


def pod_settings(config: KubernetesOrchestratorConfig, view: ExecutionView) -> PodSettings:
    """The stack's pod settings, then the stack's ``flows.NAME``, then the flow's own
    ``@flow(settings={"kubernetes": ...})``; maps merge key by key (resources amount by
    amount), the rest replaces."""
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
        for field in _MERGED:
            value = getattr(layer, field)
            if field == "resources" and value:  # requests and limits merge amount by amount
                current = merged.setdefault(field, {})
                for kind, amounts in value.items():
                    current[kind] = {**current.get(kind, {}), **amounts}
            elif value:
                merged[field] = {**merged.get(field, {}), **value}
        for field in _REPLACED:
            value = getattr(layer, field)
            if value is not None:
                merged[field] = value
    return PodSettings.model_validate(merged)


def job_manifest(
    config: KubernetesOrchestratorConfig, view: ExecutionView, command: list[str]
) -> dict[str, Any]:
    name = job_name(view)
    pod = pod_settings(config, view)
    labels = {
        **MANAGED_BY,
        **(pod.labels or {}),
        EXECUTION_LABEL: execution_label(view.exec_id),
        ATTEMPT_LABEL: str(view.runs + 1),
    }
    annotations = {**(pod.annotations or {}), "kitaru.dev/exec-id": view.exec_id}
    env: list[dict[str, Any]] = [
        {"name": "KITARU_STACK", "value": view.stack},
        _from_secret(
            "KITARU_DATABASE_URL", config.database_url_secret.name, config.database_url_secret.key
        ),
        *(_from_secret(var, ref.name, ref.key) for var, ref in sorted(config.secret_env.items())),
        *({"name": k, "value": v} for k, v in sorted((pod.env or {}).items())),
    ]
    container: dict[str, Any] = {
        "name": "kitaru",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "env": env,
    }
    if pod.resources:
        container["resources"] = {
            kind: {k: str(v) for k, v in amounts.items()} for kind, amounts in pod.resources.items()
        }
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if config.service_account:
        spec["serviceAccountName"] = config.service_account
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    if pod.node_selector:
        spec["nodeSelector"] = pod.node_selector
    if pod.tolerations:
        spec["tolerations"] = pod.tolerations
    if pod.affinity:
        spec["affinity"] = pod.affinity
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


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
