"""What the HTTP API and the MCP tools do, once for both: each operation takes plain
arguments, returns JSON data (see ``views``) and raises Kitaru's own errors, which each
front end turns into its status codes or tool errors."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from kitaru_core.client import ArtifactsClient, ExecutionsClient
from kitaru_core.diff import diff
from kitaru_core.errors import KitaruNotFoundError, KitaruStateError, KitaruUsageError
from kitaru_core.runtime.dispatch import (
    HandOff,
    continue_stopped,
    hand_off_new,
    run_in_background,
)
from kitaru_core.runtime.engine import create_execution
from kitaru_core.runtime.memory import MemoryScope, validate_key
from kitaru_core.runtime.orchestration import claim_for_retry
from kitaru_core.runtime.replay import create_replay
from kitaru_core.runtime.trust import check_trusted
from kitaru_core.server.catalog import FlowCatalog, ServedFlow
from kitaru_core.server.views import (
    artifact_value,
    jsonable,
    media_type,
    memory_json,
    wait_json,
)
from kitaru_core.stack_info import describe_plugins, describe_stacks
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import (
    STATUSES,
    ArtifactRecord,
    ExecutionRecord,
    MemoryRecord,
    Status,
)
from kitaru_core.untrusted import validate_exec_id
from kitaru_core.worker.schedules import Schedules

MAX_PAGE = 500
CHILD_ID = re.compile(r".+\.[0-9]+")
"""A child flow's id: its parent's id and its position in the parent's journal."""


@dataclass
class ArtifactContent:
    """An artifact as sent: JSON data, or its bytes with a content type."""

    record: ArtifactRecord
    media_type: str
    value: Any = None
    stream: Iterable[bytes] | None = None


def encode_cursor(created_at: float, exec_id: str) -> str:
    raw = json.dumps([created_at, exec_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, exec_id = json.loads(raw)
        return float(created_at), str(exec_id)
    except (ValueError, TypeError, binascii.Error):
        raise KitaruUsageError(
            f"cursor {cursor!r} is not valid: pass the next_cursor of the previous page"
        ) from None


class Service:
    def __init__(
        self,
        store: MetadataStore,
        catalog: FlowCatalog,
        hand_off: HandOff = run_in_background,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.hand_off = hand_off
        """Runs what the server makes runnable: its worker's threads, or the stack's
        orchestrator in the background."""
        self.executions = ExecutionsClient(store, hand_off)

    # -- flows -----------------------------------------------------------------------

    def flows(self) -> list[dict[str, Any]]:
        return [f.description for f in self.catalog]

    def start(
        self, name: str, args: Any, *, exec_id: str | None = None, started_by: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Start flow ``name``; (the execution, whether it is new). An ``exec_id`` that
        exists with the same arguments returns that execution."""
        served = self.catalog.get(name)
        kwargs = served.arguments(args if args is not None else {})
        if exec_id is not None:
            self._check_idempotency_key(exec_id)
        stack = get_stack(served.flow.stack)
        created = create_execution(
            served.flow, (), kwargs, stack=stack, exec_id=exec_id, started_by=started_by
        )
        if created.new:
            hand_off_new(created.record, stack, self.hand_off)
        return self.execution(created.record.id, with_result=False), created.new

    def _check_idempotency_key(self, key: str) -> None:
        """A caller's key becomes an execution id: it must be a valid one, and must not
        pass for another execution (a child's ``PARENT.N``, another id's prefix)."""
        validate_exec_id(key)
        if set(key) == {"."}:
            raise KitaruUsageError(f"Idempotency-Key {key!r} is only dots; choose a name")
        if CHILD_ID.fullmatch(key):
            raise KitaruUsageError(
                f"Idempotency-Key {key!r} ends in .NUMBER, the form of a child flow's id; "
                "choose a key without it"
            )
        if self.store.get_execution(key) is not None:
            return  # a repeat: the start it names is returned, never made again
        # The key itself may appear here: a concurrent start with it can land between
        # the two reads, and that one is a repeat too.
        shadowed = [i for i in self.store.find_execution_ids(key, limit=2) if i != key]
        if shadowed:
            raise KitaruUsageError(
                f"Idempotency-Key {key!r} is the start of execution {shadowed[0]}'s id, so it "
                "would shadow it; choose a key that no execution id starts with"
            )

    # -- executions ------------------------------------------------------------------

    def list_executions(
        self,
        *,
        status: str | None = None,
        flow: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent: str | None = None,
        code_version: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of executions, newest first, and the cursor of the next page."""
        if status is not None and status not in STATUSES:
            raise KitaruUsageError(f"{status!r} is not a status; use one of {', '.join(STATUSES)}")
        if not 1 <= limit <= MAX_PAGE:
            raise KitaruUsageError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        records = self.store.list_executions(
            flow=flow,
            status=status,
            limit=limit + 1,
            after=decode_cursor(cursor) if cursor else None,
            parent=self.store.require_execution(parent).id if parent else None,
            code_version=code_version,
        )
        page = records[:limit]
        following = (
            encode_cursor(page[-1].created_at, page[-1].id) if len(records) > limit else None
        )
        return [self._shape(r.id, with_result=False) for r in page], following

    def summaries(
        self,
        *,
        status: str | None = None,
        flow: str | None = None,
        stack: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        flow_contains: str | None = None,
        search: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None, int]:
        """A page of executions as one row each (steps, LLM tokens and cost), in one
        query; the cursor of the next page, and how many match in all."""
        if status is not None and status not in STATUSES:
            raise KitaruUsageError(f"{status!r} is not a status; use one of {', '.join(STATUSES)}")
        filters = {
            "flow": flow,
            "status": status,
            "stack": stack,
            "created_after": since,
            "created_before": until,
            "flow_contains": flow_contains,
            "search": search,
        }
        after = decode_cursor(cursor) if cursor else None
        rows = self.store.execution_summaries(after=after, limit=limit + 1, **filters)
        page = rows[:limit]
        last = page[-1] if page else None
        following = (
            encode_cursor(last["created_at"], last["exec_id"])
            if last is not None and len(rows) > limit
            else None
        )
        return jsonable(page), following, self.store.count_summaries(**filters)

    def execution(self, exec_id: str, *, with_result: bool = True) -> dict[str, Any]:
        return self._shape(exec_id, with_result=with_result)

    def _shape(self, exec_id: str, *, with_result: bool) -> dict[str, Any]:
        execution = self.executions.get(exec_id)
        data = jsonable(execution.to_dict(with_result=False))
        record = execution._record
        assert record is not None
        data["result_artifact_id"] = record.result_artifact_id
        if with_result:
            data["result"] = None
            if record.status == Status.COMPLETED and record.result_artifact_id:
                artifact = self.store.get_artifact(record.result_artifact_id)
                if artifact is not None:
                    sent, value = artifact_value(get_stack(record.stack).artifacts, artifact)
                    data["result"] = value if sent else None
        if execution.pending_wait is not None:
            data["pending_wait"] = wait_json(execution.pending_wait)
        return data

    def status(self, exec_id: str) -> tuple[str, int]:
        record = self.store.require_execution(exec_id)
        return record.status, record.runs

    def logs(self, exec_id: str, tail: int | None = None) -> str:
        return self.executions.logs(exec_id, tail=tail)

    def pending_waits(self, exec_id: str | None = None) -> list[dict[str, Any]]:
        return [wait_json(w) for w in self.executions.pending_waits(exec_id)]

    def waits_page(
        self,
        *,
        limit: int,
        cursor: str | None,
        flow: str | None,
        name: str | None,
        metadata: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of pending waits, oldest first, and the cursor of the next page."""
        after = None
        if cursor:
            try:
                at, exec_id, wait = json.loads(base64.urlsafe_b64decode(cursor.encode()))
                after = (float(at), str(exec_id), str(wait))
            except (ValueError, TypeError):
                raise KitaruUsageError(
                    f"cursor {cursor!r} is not valid: pass the X-Next-Cursor of the previous page"
                ) from None
        held = None
        if metadata is not None:
            key, sep, value = metadata.partition("=")
            if not sep or not key:
                raise KitaruUsageError(
                    f"metadata filter {metadata!r} must be KEY=VALUE, such as customer=acme"
                )
            held = (key, value)
        found = self.store.waits.pending_page(
            limit=limit, after=after, flow=flow, name=name, metadata=held
        )
        following = None
        if len(found) == limit:
            last = found[-1]
            position = json.dumps([last.created_at, last.exec_id, last.name]).encode()
            following = base64.urlsafe_b64encode(position).decode()
        return [wait_json(w) for w in found], following

    def give_input(self, exec_id: str, wait: str | None, value: Any) -> dict[str, Any]:
        """Answer a wait; the execution resumes where the server runs things."""
        execution = self.executions.input(exec_id, wait=wait, value=value)
        return self.execution(execution.exec_id)

    def abort_wait(self, exec_id: str, wait: str | None) -> dict[str, Any]:
        """Refuse a wait: the execution ends cancelled."""
        return self.execution(self.executions.abort_wait(exec_id, wait=wait).exec_id)

    def cancel(self, exec_id: str) -> dict[str, Any]:
        return self.execution(self.executions.cancel(exec_id).exec_id)

    def _served(self, record: ExecutionRecord, verb: str) -> ServedFlow:
        """Only executions of the flows this server serves are retried, resumed or
        replayed through it, and only once their flow reference verifies: a caller can
        never make the server import code, nor run a flow it was not given."""
        served = self.catalog.serving(record.flow_name, record.flow_ref)
        if served is None:
            names = ", ".join(f.name for f in self.catalog) or "none"
            raise KitaruStateError(
                f"execution {record.id} runs flow {record.flow_name!r} ({record.flow_ref}), "
                f"which this server does not serve (served: {names}); {verb} it where that "
                f"flow runs: `kitaru executions {verb} {record.id}`"
            )
        check_trusted(record)
        return served

    def retry(self, exec_id: str) -> dict[str, Any]:
        """A failed or cancelled execution runs again from its last completed step."""
        record = self.store.require_execution(exec_id)
        self._served(record, "retry")
        if not claim_for_retry(record.id):
            raise KitaruStateError(
                f"execution {record.id} is {record.status}; only a failed or cancelled "
                "execution can be retried"
            )
        self.hand_off(self.store.require_execution(record.id))
        return self.execution(record.id)

    def resume(self, exec_id: str) -> dict[str, Any]:
        """A waiting or sleeping execution runs now (a wait without input stops it
        again); a running one whose process died is recovered."""
        record = self.store.require_execution(exec_id)
        self._served(record, "resume")
        if record.status in (Status.WAITING, Status.SLEEPING):
            continue_stopped(self.store, record, self.hand_off)
        elif record.status == Status.RUNNING:
            self.hand_off(record)  # the runner finds out whether its owner still lives
        else:
            hint = "; use retry" if record.status in (Status.FAILED, Status.CANCELLED) else ""
            raise KitaruStateError(
                f"execution {record.id} is {record.status}: nothing to resume{hint}"
            )
        return self.execution(record.id)

    def replay(
        self,
        exec_id: str,
        *,
        from_: str | int,
        overrides: dict[str, Any] | None = None,
        args: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new execution reusing ``exec_id``'s steps before ``from_``."""
        source = self.store.require_execution(exec_id)
        served = self._served(source, "replay")
        checked = {k: served.override(k, v) for k, v in (overrides or {}).items()}
        inputs = served.arguments(args or {}, partial=True)
        record = create_replay(
            source, from_=from_, overrides=checked, flow_inputs=inputs, flow=served.flow
        )
        self.hand_off(record)
        return self.execution(record.id, with_result=False)

    def diff(self, a: str, b: str) -> dict[str, Any]:
        return jsonable(diff(a, b).to_dict())

    # -- artifacts -------------------------------------------------------------------

    def artifacts(self, exec_id: str) -> list[dict[str, Any]]:
        return [jsonable(a.to_dict()) for a in ArtifactsClient(self.store).list(exec_id)]

    def artifact_metadata(self, artifact_id: str) -> dict[str, Any]:
        return jsonable(ArtifactsClient(self.store).get(artifact_id).to_dict())

    def artifact(self, artifact_id: str) -> ArtifactContent:
        record = self.store.get_artifact(artifact_id)
        if record is None:
            raise KitaruNotFoundError(f"no artifact with id {artifact_id!r}")
        if record.serializer == "pickle":
            raise KitaruStateError(
                f"artifact {record.name!r} ({record.id}) is a pickle of "
                f"{record.type_ref.replace(':', '.')}, which is never sent over HTTP; load "
                "it in Python with KitaruClient().artifacts.get(ID).load()"
            )
        execution = self.store.get_execution(record.exec_id or "")
        artifacts = get_stack(execution.stack if execution else None).artifacts
        sent, value = artifact_value(artifacts, record)
        if sent:
            return ArtifactContent(record, media_type(record, b""), value=value)
        stream = artifacts.open_verified(record)
        head = stream.read(16)
        return ArtifactContent(record, media_type(record, head), stream=_Rejoined(head, stream))

    # -- memory ----------------------------------------------------------------------

    def memory_get(
        self, scope_type: str, scope: str, key: str, version: int | None = None
    ) -> dict[str, Any]:
        space = MemoryScope(scope_type, scope, store=self.store)
        found = self.store.memory.get_with_value(
            space.scope_type, space.scope, validate_key(key), version
        )
        if found is None:
            at = f" at version {version}" if version is not None else ""
            raise KitaruNotFoundError(f"memory {scope_type}/{scope} has no key {key!r}{at}")
        return memory_json(found[0], found[1], get_stack(found[0].stack).artifacts)

    def memory_list(
        self, scope_type: str, scope: str, prefix: str | None = None
    ) -> list[dict[str, Any]]:
        space = MemoryScope(scope_type, scope, store=self.store)
        return [
            self._version(r)
            for r in self.store.memory.latest(space.scope_type, space.scope, prefix)
        ]

    def memory_history(self, scope_type: str, scope: str, key: str) -> list[dict[str, Any]]:
        space = MemoryScope(scope_type, scope, store=self.store)
        records = self.store.memory.history(space.scope_type, space.scope, validate_key(key))
        return [self._version(r) for r in records]

    def _version(self, record: MemoryRecord) -> dict[str, Any]:
        """A version the listing already read, with its value."""
        artifact = self.store.get_artifact(record.artifact_id) if record.artifact_id else None
        return memory_json(record, artifact, get_stack(record.stack).artifacts)

    def memory_set(
        self,
        scope_type: str,
        scope: str,
        key: str,
        value: Any,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Write a new version; the value is plain JSON data."""
        space = MemoryScope(scope_type, scope, store=self.store)
        version = space.set(key, value, expected_version=expected_version, data_only=True)
        return self.memory_get(scope_type, scope, key, version)

    def memory_delete(self, scope_type: str, scope: str, key: str) -> dict[str, Any]:
        space = MemoryScope(scope_type, scope, store=self.store)
        version = space.delete(key)
        return self.memory_get(scope_type, scope, key, version)

    def memory_scopes(self) -> list[dict[str, str]]:
        return [{"scope_type": t, "scope": n} for t, n in self.store.memory.scopes()]

    # -- stacks, plugins, schedules --------------------------------------------------

    def stacks(self) -> list[dict[str, Any]]:
        return jsonable(describe_stacks())

    def plugins(self) -> list[dict[str, Any]]:
        return jsonable(describe_plugins())

    def schedules(self) -> list[dict[str, Any]]:
        schedules = Schedules(self.store)
        return [
            {**jsonable(r), "next_firings": schedules.next_firings(r.name)}
            for r in schedules.list()
        ]

    def schedule(self, name: str, action: str) -> dict[str, Any]:
        """Pause or resume a schedule."""
        schedules = Schedules(self.store)
        record = schedules.pause(name) if action == "pause" else schedules.resume(name)
        return {**jsonable(record), "next_firings": schedules.next_firings(record.name)}


class _Rejoined:
    """A stream whose first bytes were read ahead (to tell its content type)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self._head:
                yield self._head
            while chunk := self._rest.read(1024 * 1024):
                yield chunk
        finally:
            self._rest.close()
