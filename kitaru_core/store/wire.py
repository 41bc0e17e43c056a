"""How a metadata store call crosses HTTP: which calls a process may make through
``kitaru serve``, the scope each needs, and how their arguments and results are written.

The HTTP store (``http_store.py``) and the server's store route
(``kitaru_core/server/store_api.py``) share this table, so a call the server does not
answer is one the client never offers. Values are JSON; bytes, sets and the store's
record types are objects under a tag key that starts with a NUL character, which no
name a user writes holds (in JSON ``{"\\u0000b": base64}``, ``{"\\u0000s": [...]}``
and ``{"\\u0000r": name, "v": [...]}``), and only the record types named here are ever
built from a request. Tuples arrive as lists, which every caller unpacks the same way.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from kitaru_core.store.deaths import Death
from kitaru_core.store.memory_versions import JournaledWrite
from kitaru_core.store.records import (
    ArtifactRecord,
    EventRecord,
    ExecutionRecord,
    JournalEntry,
    LLMCallRecord,
    MemoryRecord,
    ScheduleRecord,
    WaitRecord,
    WorkerRecord,
)

RECORDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ArtifactRecord,
        Death,
        EventRecord,
        ExecutionRecord,
        JournalEntry,
        JournaledWrite,
        LLMCallRecord,
        MemoryRecord,
        ScheduleRecord,
        WaitRecord,
        WorkerRecord,
    )
}
_FIELDS = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in RECORDS.values()}

_READ, _RUN, _ADMIN = "read", "run", "admin"
CALLS: dict[str, str] = {
    # executions
    "identity": _READ,
    "create_execution": _RUN,
    "statuses": _READ,
    "get_execution": _READ,
    "require_execution": _READ,
    "find_execution_ids": _READ,
    "unfinished_on_stack": _READ,
    "list_executions": _READ,
    "oldest_ids": _READ,
    "execution_summaries": _READ,
    "count_summaries": _READ,
    "children": _READ,
    "unfinished_flows": _READ,
    "unfinished_code_versions": _READ,
    # leases and the life of a run
    "claim_lease": _RUN,
    "renew_lease": _RUN,
    "release_lease": _RUN,
    "mark_started": _RUN,
    "finish": _RUN,
    "fail_run": _RUN,
    "forget_results": _RUN,
    "cancel": _RUN,
    "dispatch": _RUN,
    "due_work": _READ,
    "running_owners": _READ,
    "complete_timer": _RUN,
    "wake": _RUN,
    "merge_execution_metadata": _RUN,
    "merge_execution_options": _RUN,
    # the journal, LLM calls, artifacts
    "load_journal": _READ,
    "journal_extent": _READ,
    "journal_page": _READ,
    "journal_at_path": _READ,
    "record_entry": _RUN,
    "create_replay": _RUN,
    "record_llm_call": _RUN,
    "llm_spend": _READ,
    "llm_calls": _READ,
    "get_artifact": _READ,
    "code_archive_key": _READ,
    "set_code": _RUN,
    "list_artifacts": _READ,
    # the parts
    "waits.create_pending": _RUN,
    "waits.get": _READ,
    "waits.for_execution": _READ,
    "waits.pending": _READ,
    "waits.pending_page": _READ,
    "waits.count_pending": _READ,
    "waits.answer": _RUN,
    "waits.expire": _RUN,
    "waits.abort": _RUN,
    "memory.get": _READ,
    "memory.get_with_value": _READ,
    "memory.scopes": _READ,
    "memory.history": _READ,
    "memory.latest": _READ,
    "memory.write": _RUN,
    "stacks.get": _RUN,  # unmasked, as a run builds its components from it
    "stacks.names": _READ,
    "stacks.save": _ADMIN,
    "stacks.delete": _ADMIN,
    "queues.admit": _RUN,
    "queues.queued": _READ,
    "queues.with_queued": _READ,
    "schedules.create": _ADMIN,
    "schedules.get": _READ,
    "schedules.list": _READ,
    "schedules.update": _ADMIN,
    "schedules.advance": _RUN,
    "schedules.delete": _ADMIN,
    "workers.beat": _RUN,
    "workers.list": _READ,
    "workers.remove": _RUN,
    "workers.forget_older_than": _RUN,
    "retention.note_blob_write": _RUN,
    "retention.key_is_kept": _READ,
    "retention.kept_among": _READ,
    "retention.forget_blob_writes": _ADMIN,
    "retention.delete_executions": _ADMIN,
    "events.after": _READ,
    "events.latest_id": _READ,
    "events.forget_before": _ADMIN,
    "deaths.record": _RUN,
    "output.append": _RUN,
    "output.read": _READ,
}
"""Every call the server answers, with the token scope it needs. Tokens themselves are
never read or written through it."""

RECORDING_CALLS = frozenset({"create_execution", "create_replay"})
"""Calls that record a new execution: the server notes the token that made them."""


_BYTES, _SET, _RECORD = "\0b", "\0s", "\0r"


def _tagged(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    fields = _FIELDS.get(type(value))
    if fields is not None:
        return {_RECORD: type(value).__name__, "v": [getattr(value, f) for f in fields]}
    if isinstance(value, set | frozenset):
        return {_SET: list(value)}
    raise TypeError(f"a {type(value).__name__} cannot be sent to the Kitaru server")


def _untagged(data: dict[str, Any]) -> Any:
    if len(data) == 1:
        if _BYTES in data:
            return base64.b64decode(data[_BYTES])
        if _SET in data:
            return set(data[_SET])
    elif len(data) == 2 and _RECORD in data:
        cls = RECORDS.get(data[_RECORD])
        values = data.get("v")
        if cls is None or not isinstance(values, list) or len(values) != len(_FIELDS[cls]):
            raise ValueError(f"{data[_RECORD]!r} is not a record the metadata store holds")
        return cls(*values)
    return data


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_tagged, separators=(",", ":")).encode()


def loads(body: bytes | str) -> Any:
    return json.loads(body, object_hook=_untagged)
