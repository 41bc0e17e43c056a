"""The JSON shapes of the HTTP API and the MCP tools: those of the CLI's
``--output json``, built from values that are data, never from values that would run
code (a pickle is never loaded to be sent; its place says where it is instead)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from kitaru_core.artifacts import Artifacts
from kitaru_core.store.records import (
    ArtifactRecord,
    EventRecord,
    MemoryRecord,
    TokenRecord,
    WaitRecord,
)

SENT_AS_DATA = frozenset({"str", "json", "pydantic", "dataclass"})
"""Serializers whose bytes are JSON or text: sent as they are, with no type imported."""


def jsonable(value: Any) -> Any:
    """Plain JSON data: dataclasses and models as objects, NaN and infinity as null,
    bytes as their size (binary content is fetched on its own)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in value.__dict__.items() if not k.startswith("_")}
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value)}
    return repr(value)


def artifact_value(artifacts: Artifacts, record: ArtifactRecord) -> tuple[bool, Any]:
    """(True, the value as JSON data) for text and JSON-encoded values; (False, None)
    for binary values and pickles, which are never decoded to be sent."""
    if record.serializer not in SENT_AS_DATA:
        return False, None
    data = artifacts.read_bytes(record)
    if record.serializer == "str":
        return True, data.decode()
    return True, json.loads(data)


def media_type(record: ArtifactRecord, data_head: bytes) -> str:
    """The content type a binary artifact is sent with."""
    if record.serializer == "str":
        return "text/plain; charset=utf-8"
    if record.serializer in SENT_AS_DATA:
        return "application/json"
    for magic, kind in _MAGIC:
        if data_head.startswith(magic):
            return kind
    return "application/octet-stream"


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def wait_json(wait: WaitRecord) -> dict[str, Any]:
    return {
        "exec_id": wait.exec_id,
        "name": wait.name,
        "position": wait.position,
        "status": wait.status,
        "question": wait.question,
        "schema": wait.schema,
        "schema_name": wait.schema_name,
        "metadata": jsonable(wait.metadata),
        "created_at": wait.created_at,
        "expires_at": wait.expires_at,
    }


def memory_json(
    record: MemoryRecord, artifact: ArtifactRecord | None, artifacts: Artifacts
) -> dict[str, Any]:
    """One version of a memory key, as ``kitaru memory get --output json`` shows it."""
    sent, value = (False, None) if artifact is None else artifact_value(artifacts, artifact)
    data: dict[str, Any] = {
        "key": record.key,
        "version": record.version,
        "value": value,
        "deleted": record.deleted,
        "scope_type": record.scope_type,
        "scope": record.scope,
        "exec_id": record.exec_id,
        "created_at": record.created_at,
    }
    if artifact is not None and not sent:
        data["value_artifact_id"] = artifact.id
        data["value_serializer"] = artifact.serializer
    return data


def event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "exec_id": event.exec_id,
        "kind": event.kind,
        "name": event.name,
        "status": event.status,
        "position": event.position,
    }


def token_json(record: TokenRecord) -> dict[str, Any]:
    """Everything about a token but its hash."""
    return {
        "id": record.id,
        "name": record.name,
        "scope": record.scope,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "last_used_at": record.last_used_at,
    }
