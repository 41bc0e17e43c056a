"""``pod_template``: a strategic-merge patch of the pod spec, as ``kubectl patch`` applies
one, so a stack or a flow adds a volume, a sidecar or a security setting without
repeating what Kitaru writes.

Maps merge key by key (a ``null`` removes the key); lists of named things merge item
by item on their merge key (a container by ``name``, a volume mount by ``mountPath``),
an item with ``$patch: delete`` removes its match; every other list is replaced. The
merge keys are Kubernetes' own (``x-kubernetes-patch-merge-key`` of the API schema).
"""

from __future__ import annotations

import copy
from typing import Any

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "topologySpreadConstraints": "topologyKey",
    "resizePolicy": "resourceName",
}


def merge(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``original`` with ``patch`` applied; neither is changed."""
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    merged = copy.deepcopy(original)
    for key, value in patch.items():
        if key == "$patch":
            continue
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = _merge_list(merged[key], value, MERGE_KEYS[key])
        else:
            merged[key] = _without_directives(value)
    return merged


def _merge_list(original: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            merged.append(copy.deepcopy(item))
            continue
        at = next(
            (
                i
                for i, old in enumerate(merged)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if at is not None:
                del merged[at]
        elif at is None:
            merged.append(_without_directives(item))
        else:
            merged[at] = merge(merged[at], item)
    return merged


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value
