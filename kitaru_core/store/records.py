"""Rows of the metadata store as typed records.

Each record is a dataclass whose fields are its table's columns, in order; the column
list, the INSERT statement, the parameters of a row and the mapping back from a row are
derived from those fields (``@row``), so a new column is added in one place (plus its
migration, and ``schema.py``, which a test checks against the migrations).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar


class Status(StrEnum):
    """An execution's status (``str`` values, as stored and printed)."""

    QUEUED = "queued"
    """Started, held back by its flow's concurrency limit or key; the worker dispatches it."""
    RUNNING = "running"
    SLEEPING = "sleeping"
    """Stopped at a durable timer (``wake_at``); the worker resumes it when due."""
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES = tuple(Status)
TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
UNFINISHED_STATUSES = tuple(s for s in Status if s not in TERMINAL_STATUSES)

T = TypeVar("T")


# Empty metadata, tags and errors are the common case on the hot path of every step:
# they skip the JSON encoder and decoder.
_EMPTY_READ: dict[str, type] = {"{}": dict, "[]": list}
_EMPTY_WRITE: dict[type, str] = {dict: "{}", list: "[]"}


def _from_json(value: Any) -> Any:
    if value is None:
        return None
    empty = _EMPTY_READ.get(value)
    return empty() if empty is not None else json.loads(value)


def _to_json(value: Any) -> Any:
    if value is None:
        return None
    if not value and type(value) in _EMPTY_WRITE:
        return _EMPTY_WRITE[type(value)]
    return json.dumps(value, default=str)


def _to_bytes(value: Any) -> Any:
    return bytes(value) if value is not None else None  # psycopg gives memoryview


def row(
    table: str, *, json_fields: tuple[str, ...] = (), bytes_fields: tuple[str, ...] = ()
) -> Callable[[type[T]], type[T]]:
    """Give a record dataclass its ``COLUMNS``, ``INSERT``, ``params()`` and
    ``from_row()``, derived from its fields. JSON fields are stored as text."""

    def wrap(cls: type[T]) -> type[T]:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        # Only the few converted columns are touched per row: this runs for every
        # journal entry a resumed run reads, and for every record written.
        readers = [
            (i, _from_json if n in json_fields else _to_bytes)
            for i, n in enumerate(names)
            if n in json_fields or n in bytes_fields
        ]
        writers = [(n, _to_json) for n in names if n in json_fields]
        cls.COLUMNS = ", ".join(names)  # type: ignore[attr-defined]
        cls.NAMES = tuple(names)  # type: ignore[attr-defined]
        cls.INSERT = (  # type: ignore[attr-defined]
            f"INSERT INTO {table} ({cls.COLUMNS}) VALUES ("  # type: ignore[attr-defined]
            + ", ".join(f":{n}" for n in names)
            + ")"
        )

        def from_row(klass: type[T], values: tuple[Any, ...]) -> T:
            if len(values) != len(names):
                raise ValueError(f"{klass.__name__} has {len(names)} columns, got {len(values)}")
            fields = list(values)
            for i, read in readers:
                fields[i] = read(fields[i])
            return klass(*fields)

        def params(self: Any) -> dict[str, Any]:
            out = dict(self.__dict__)
            for n, write in writers:
                out[n] = write(out[n])
            return out

        cls.from_row = classmethod(from_row)  # type: ignore[attr-defined]
        cls.params = params  # type: ignore[attr-defined]
        return cls

    return wrap


class Row:
    """What ``@row`` gives a record (declared for type checkers)."""

    COLUMNS: ClassVar[str]
    NAMES: ClassVar[tuple[str, ...]]
    INSERT: ClassVar[str]

    @classmethod
    def from_row(cls: type[T], values: tuple[Any, ...]) -> T:  # pragma: no cover
        raise NotImplementedError

    def params(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError


@row("executions", json_fields=("error", "metadata", "options"))
@dataclass
class ExecutionRecord(Row):
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
    wake_at: float | None = None
    """When a sleeping execution's timer, or a waiting one's deadline, is due."""
    queue: str | None = None
    """The flow's queue (its name) when it limits concurrency or runs one per key."""
    queue_key: str | None = None
    """The value of the flow's key argument: one execution per key runs at a time."""
    recoveries: int = 0
    """Times a worker resumed it after the process running it died."""
    parent_exec_id: str | None = None
    """The execution whose flow body started this one (a child flow)."""
    parent_position: int | None = None
    """The parent's journal position of that call."""
    code_version: str | None = None
    """The code it runs (``runtime/code_version.py``); None: recorded before versions."""
    code_archive: str | None = None
    """With ``code: archive``: the sha256 of the source archive its runs import."""
    started_by: str | None = None
    """The name of the token whose request to ``kitaru serve`` recorded it; None when
    a process with the database's own credentials did."""


@row("journal", json_fields=("error", "metadata"))
@dataclass
class JournalEntry(Row):
    exec_id: str
    position: int
    name: str
    status: str
    """``completed`` (binding on resume), ``failed`` (run again on resume) or
    ``sleeping`` (a durable timer not yet due; its output holds the deadline)."""
    started_at: float
    ended_at: float
    kind: str = "checkpoint"
    """``checkpoint``, ``llm``, ``wait``, ``sleep`` or ``memory``: what kind of step
    recorded it."""
    output_artifact_id: str | None = None
    attempts: int = 1
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    """Where the step is in the flow body's tree of tasks (``runtime/scopes.py``), by
    which a resumed run finds it; none when it is the position itself."""

    @property
    def step_path(self) -> str:
        return str(self.position) if self.path is None else self.path

    @classmethod
    def completed(
        cls,
        exec_id: str,
        position: int,
        name: str,
        *,
        kind: str,
        started_at: float,
        ended_at: float,
        output_artifact_id: str,
        attempts: int = 1,
        metadata: dict[str, Any] | None = None,
        path: str | None = None,
    ) -> JournalEntry:
        """The entry recording that the step at ``position`` completed."""
        return cls(
            exec_id=exec_id,
            position=position,
            name=name,
            status="completed",
            started_at=started_at,
            ended_at=ended_at,
            kind=kind,
            output_artifact_id=output_artifact_id,
            attempts=attempts,
            metadata=metadata or {},
            path=path,
        )


@row("artifacts", json_fields=("tags",), bytes_fields=("inline",))
@dataclass
class ArtifactRecord(Row):
    id: str
    exec_id: str | None
    name: str
    role: str
    """``input``, ``output`` (a step's), ``saved`` (``kitaru.save``), ``result``,
    ``wait``, ``memory`` or ``llm``."""
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


@row("waits", json_fields=("schema", "metadata"))
@dataclass
class WaitRecord(Row):
    exec_id: str
    name: str
    position: int
    status: str
    """``pending``, ``answered``, ``aborted`` or ``expired``."""
    question: str | None
    schema: dict[str, Any]
    """The JSON schema the input must fit."""
    schema_name: str
    """The expected type as a person reads it (``bool``, ``Literal['a', 'b']``)."""
    metadata: dict[str, Any]
    created_at: float
    value_artifact_id: str | None = None
    answered_at: float | None = None
    expires_at: float | None = None
    """After this, the wait resolves to its default, or raises ``KitaruWaitExpiredError``."""


@row("memory")
@dataclass
class MemoryRecord(Row):
    scope_type: str
    scope: str
    key: str
    version: int
    artifact_id: str | None
    """None for a tombstone (the key was deleted at this version)."""
    exec_id: str | None
    stack: str
    created_at: float

    @property
    def deleted(self) -> bool:
        return self.artifact_id is None


@row("llm_calls")
@dataclass
class LLMCallRecord(Row):
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


@row("schedules", json_fields=("args",))
@dataclass
class ScheduleRecord(Row):
    name: str
    flow_ref: str
    flow_name: str
    args: dict[str, Any]
    """The flow's keyword arguments for every firing (plain JSON)."""
    cron: str
    timezone: str
    catchup: str
    """``skip``, ``latest`` or ``all``: which slots missed while no worker ran still fire."""
    stack: str
    paused: int
    next_at: float
    """The earliest slot not yet fired (seconds since the epoch)."""
    created_at: float
    updated_at: float
    last_exec_id: str | None = None


@row("workers", json_fields=("counts",))
@dataclass
class WorkerRecord(Row):
    id: str
    """host:pid:start-ticks:nonce, like a lease owner."""
    stack: str
    started_at: float
    heartbeat_at: float
    counts: dict[str, Any] = field(default_factory=dict)


@row("api_tokens")
@dataclass
class TokenRecord(Row):
    id: str
    """The token's public part, shown by ``kitaru tokens list``."""
    name: str
    scope: str
    """``read``, ``input``, ``run`` or ``admin``."""
    secret_hash: str
    """SHA-256 of the secret part: the token itself is never stored."""
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


@row("events")
@dataclass
class EventRecord(Row):
    """One line of the event log (written by database triggers, see migration 0007)."""

    id: int
    at: float
    exec_id: str
    kind: str
    """``status`` (the execution's status changed), ``wait`` (a wait was created) or
    ``step`` (a checkpoint, LLM call, wait, sleep or memory step ended)."""
    name: str | None
    status: str | None
    position: int | None
