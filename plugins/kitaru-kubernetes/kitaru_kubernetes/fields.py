"""Refusing fields Kubernetes does not know, by the official client's own models (the
API server would drop them with a warning, and a ``limts`` would go unnoticed)."""

from __future__ import annotations

import difflib
import re
from typing import Any

_LIST = re.compile(r"list\[(.+)\]")
_DICT = re.compile(r"dict\(str, (.+)\)")
_DIRECTIVES = ("$patch", "$setElementOrder", "$deleteFromPrimitiveList", "$retainKeys")
"""Strategic-merge directives: not fields, but what a patch may carry."""


def check_known(data: Any, model: str, where: str) -> None:
    """Raise ``ValueError`` naming the first field of ``data`` that the Kubernetes
    model ``model`` (``V1PodSpec``) does not have."""
    unknown = unknown_fields(data, model, where)
    if unknown:
        field, known = unknown[0]
        close = difflib.get_close_matches(field.rpartition(".")[2], known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known here: {', '.join(known)}"
        raise ValueError(f"{field} is not a Kubernetes field ({hint}); Kubernetes would drop it")


def unknown_fields(data: Any, model: str, where: str) -> list[tuple[str, list[str]]]:
    from kubernetes import client

    cls = getattr(client.models, model, None)
    if cls is None or not isinstance(data, dict):
        return []
    by_json = {json: attr for attr, json in cls.attribute_map.items()}
    found: list[tuple[str, list[str]]] = []
    for key, value in data.items():
        if key.startswith(_DIRECTIVES):
            continue
        if key not in by_json:
            found.append((f"{where}.{key}", sorted(by_json)))
            continue
        found.extend(_within(value, cls.openapi_types[by_json[key]], f"{where}.{key}"))
    return found


def _within(value: Any, type_name: str, where: str) -> list[tuple[str, list[str]]]:
    if (inner := _LIST.fullmatch(type_name)) and isinstance(value, list):
        return [
            problem
            for i, item in enumerate(value)
            for problem in _within(item, inner.group(1), f"{where}[{i}]")
        ]
    if (inner := _DICT.fullmatch(type_name)) and isinstance(value, dict):
        return [
            problem
            for key, item in value.items()
            for problem in _within(item, inner.group(1), f"{where}.{key}")
        ]
    if type_name.startswith("V") and isinstance(value, dict):
        return unknown_fields(value, type_name, where)
    return []
