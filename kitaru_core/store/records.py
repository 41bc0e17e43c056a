"""Rows of the metadata store as typed records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
STATUSES = ("running", "waiting", "completed", "failed", "cancelled")


@dataclass
class ExecutionRecord:
    id: str
    flow_name: str
    flow_ref: str
    status: str
    stack: str
    created_at: float
    original_exec_id: str | None = None
    result_artifact_id: str | None = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_heartbeat: float | None = None
    runs: int = 0
    started_at: float | None = None
    ended_at: float | None = None

    COLUMNS = (
        "id, flow_name, flow_ref, status, stack, created_at, original_exec_id, "
        "result_artifact_id, error, metadata, options, lease_owner, lease_heartbeat, runs, "
        "started_at, ended_at"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ExecutionRecord:
        (
            id_,
            flow_name,
            flow_ref,
            status,
            stack,
            created_at,
            original,
            result_id,
            error,
            metadata,
            options,
            owner,
            heartbeat,
            runs,
            started_at,
            ended_at,
        ) = row
        return cls(
            id=id_,
            flow_name=flow_name,
            flow_ref=flow_ref,
            status=status,
            stack=stack,
            created_at=created_at,
            original_exec_id=original,
            result_artifact_id=result_id,
            error=json.loads(error) if error else None,
            metadata=json.loads(metadata),
            options=json.loads(options),
            lease_owner=owner,
            lease_heartbeat=heartbeat,
            runs=runs,
            started_at=started_at,
            ended_at=ended_at,
        )


@dataclass
class JournalEntry:
    exec_id: str
    position: int
    name: str
    status: str
    """``completed`` (binding on resume) or ``failed`` (run again on resume)."""
    started_at: float
    ended_at: float
    kind: str = "checkpoint"
    output_artifact_id: str | None = None
    attempts: int = 1
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    COLUMNS = (
        "exec_id, position, name, status, started_at, ended_at, kind, output_artifact_id, "
        "attempts, error, metadata"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JournalEntry:
        (
            exec_id,
            position,
            name,
            status,
            started_at,
            ended_at,
            kind,
            output_id,
            attempts,
            error,
            metadata,
        ) = row
        return cls(
            exec_id=exec_id,
            position=position,
            name=name,
            status=status,
            started_at=started_at,
            ended_at=ended_at,
            kind=kind,
            output_artifact_id=output_id,
            attempts=attempts,
            error=json.loads(error) if error else None,
            metadata=json.loads(metadata),
        )

    def params(self) -> dict[str, Any]:
        return {
            "exec_id": self.exec_id,
            "position": self.position,
            "name": self.name,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "kind": self.kind,
            "output_artifact_id": self.output_artifact_id,
            "attempts": self.attempts,
            "error": json.dumps(self.error) if self.error else None,
            "metadata": json.dumps(self.metadata, default=str) if self.metadata else "{}",
        }


@dataclass
class ArtifactRecord:
    id: str
    exec_id: str | None
    name: str
    role: str
    """``input``, ``output`` (a checkpoint's), ``saved`` (``kitaru.save``) or ``result``."""
    key: str
    serializer: str
    type_ref: str
    size: int
    created_at: float
    artifact_type: str = "output"
    position: int | None = None
    tags: list[str] = field(default_factory=list)
    inline: bytes | None = None
    """The bytes themselves when small enough to live in the metadata store."""
    signature: str | None = None
    """HMAC of a value whose loading runs code (pickle, typed models); see signing.py."""

    COLUMNS = (
        "id, exec_id, name, role, key, serializer, type_ref, size, created_at, "
        "artifact_type, position, tags, inline, signature"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ArtifactRecord:
        (
            id_,
            exec_id,
            name,
            role,
            key,
            serializer,
            type_ref,
            size,
            created_at,
            artifact_type,
            position,
            tags,
            inline,
            signature,
        ) = row
        return cls(
            id=id_,
            exec_id=exec_id,
            name=name,
            role=role,
            key=key,
            serializer=serializer,
            type_ref=type_ref,
            size=size,
            created_at=created_at,
            artifact_type=artifact_type,
            position=position,
            tags=json.loads(tags),
            inline=bytes(inline) if inline is not None else None,
            signature=signature,
        )

    def params(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "exec_id": self.exec_id,
            "name": self.name,
            "role": self.role,
            "key": self.key,
            "serializer": self.serializer,
            "type_ref": self.type_ref,
            "size": self.size,
            "created_at": self.created_at,
            "artifact_type": self.artifact_type,
            "position": self.position,
            "tags": json.dumps(self.tags) if self.tags else "[]",
            "inline": self.inline,
            "signature": self.signature,
        }


@dataclass
class WaitRecord:
    exec_id: str
    name: str
    position: int
    status: str
    """``pending``, ``answered`` or ``aborted``."""
    question: str | None
    schema: dict[str, Any]
    """The JSON schema the input must fit."""
    schema_name: str
    """The expected type as a person reads it (``bool``, ``Literal['a', 'b']``)."""
    metadata: dict[str, Any]
    created_at: float
    value_artifact_id: str | None = None
    answered_at: float | None = None

    COLUMNS = (
        "exec_id, name, position, status, question, schema, schema_name, metadata, "
        "created_at, value_artifact_id, answered_at"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> WaitRecord:
        values = dict(zip([c.strip() for c in cls.COLUMNS.split(",")], row, strict=True))
        values["schema"] = json.loads(values["schema"])
        values["metadata"] = json.loads(values["metadata"])
        return cls(**values)


@dataclass
class MemoryRecord:
    scope_type: str
    scope: str
    key: str
    version: int
    artifact_id: str | None
    """None for a tombstone (the key was deleted at this version)."""
    exec_id: str | None
    stack: str
    created_at: float

    COLUMNS = "scope_type, scope, key, version, artifact_id, exec_id, stack, created_at"

    @property
    def deleted(self) -> bool:
        return self.artifact_id is None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> MemoryRecord:
        return cls(*row)


@dataclass
class LLMCallRecord:
    id: str
    exec_id: str | None
    position: int | None
    checkpoint: str | None
    alias: str | None
    model: str
    prompt_artifact_id: str | None
    response_artifact_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency: float
    attempts: int
    error: str | None
    created_at: float

    COLUMNS = (
        "id, exec_id, position, checkpoint, alias, model, prompt_artifact_id, "
        "response_artifact_id, input_tokens, output_tokens, cost_usd, latency, attempts, "
        "error, created_at"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> LLMCallRecord:
        return cls(*row)

    def params(self) -> dict[str, Any]:
        return dict(self.__dict__)
