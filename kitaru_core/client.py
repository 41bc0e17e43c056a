"""``KitaruClient``: look at executions and act on them from any process."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from kitaru_core.errors import KitaruNotFoundError, KitaruStateError, KitaruUsageError
from kitaru_core.runtime import trust
from kitaru_core.runtime.checkpoint import INPUTS
from kitaru_core.runtime.dispatch import HandOff, continue_stopped, run_in_background
from kitaru_core.runtime.flow import FlowHandle, load_result, start_replay
from kitaru_core.runtime.inputs import abort_wait, give_input
from kitaru_core.runtime.logs import EVENTS_RUN, log_path
from kitaru_core.runtime.memory import MemoryEntry, MemoryScope
from kitaru_core.settings import load_settings
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import RUN_STARTS, MetadataStore, get_store
from kitaru_core.store.records import (
    STATUSES,
    TERMINAL_STATUSES,
    ArtifactRecord,
    ExecutionRecord,
    LLMCallRecord,
    Status,
    WaitRecord,
)
from kitaru_core.worker import retention
from kitaru_core.worker.retention import Deleted
from kitaru_core.worker.schedules import Schedules

if TYPE_CHECKING:
    from kitaru_core.diff import ExecutionDiff

_MISSING: Any = object()


@dataclass
class ArtifactRef:
    """A stored artifact; ``load()`` reads its value back with its original type."""

    id: str
    exec_id: str | None
    name: str
    role: str
    artifact_type: str
    serializer: str
    type_ref: str
    size: int
    uri: str
    created_at: float
    position: int | None = None
    tags: list[str] = field(default_factory=list)
    _record: ArtifactRecord | None = field(default=None, repr=False, compare=False)
    _stack: str = field(default="local", repr=False, compare=False)

    def load(self) -> Any:
        assert self._record is not None
        return get_stack(self._stack).artifacts.read(self._record)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass
class CheckpointInfo:
    position: int
    name: str
    status: str
    kind: str
    attempts: int
    started_at: float
    ended_at: float
    artifact_id: str | None
    error: dict[str, Any] | None
    metadata: dict[str, Any]
    inputs: dict[str, str] | None = None
    """What a checkpoint was called with, each argument as a short text."""

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at


def _without_inputs(metadata: dict[str, Any]) -> dict[str, Any]:
    """A step's own metadata, without the arguments the runtime kept beside it."""
    if INPUTS not in metadata:
        return metadata
    return {k: v for k, v in metadata.items() if k != INPUTS}


@dataclass
class Execution:
    exec_id: str
    flow_name: str
    status: str
    stack: str
    checkpoints: list[CheckpointInfo]
    error: dict[str, Any] | None
    original_exec_id: str | None
    started_at: float | None
    ended_at: float | None
    created_at: float
    runs: int
    metadata: dict[str, Any]
    lease_owner: str | None
    wake_at: float | None = None
    """When a sleeping execution's timer, or a waiting one's deadline, is due."""
    queue_key: str | None = None
    """The value of its flow's key argument (``@flow(key=...)``)."""
    parent_exec_id: str | None = None
    """The execution whose flow body started this one (a child flow)."""
    pending_wait: Any = None
    llm_calls: list[LLMCallRecord] = field(default_factory=list)
    """Every LLM call of the execution: model, tokens, latency, cost, error."""
    budget: dict[str, Any] | None = None
    """The flow's ``max_cost_usd`` and ``max_llm_calls``, if it set them."""
    code_version: str | None = None
    """The code it runs (``@flow(version=...)``, ``KITARU_CODE_VERSION`` or a digest of
    its source); None for an execution recorded before versions were."""
    code_archive: str | None = None
    """With ``code: archive``: the digest of the source archive its runs import."""
    started_by: str | None = None
    """The token whose request to ``kitaru serve`` recorded it; None when a process
    with the database's own credentials did."""
    run_starts: list[float] = field(default_factory=list)
    """When each of its runs began (runs recorded before this was kept are missing)."""
    _record: ExecutionRecord | None = field(default=None, repr=False, compare=False)
    _result: Any = field(default=_MISSING, repr=False, compare=False)

    @property
    def result(self) -> Any:
        """The flow's return value (None until the execution completed)."""
        if self._result is _MISSING:
            completed = self._record is not None and self._record.status == Status.COMPLETED
            self._result = load_result(self._record) if completed else None  # type: ignore[arg-type]
        return self._result

    @property
    def llm_totals(self) -> dict[str, Any]:
        """Calls, input and output tokens, and cost (None when no price was known)."""
        costs = [c.cost_usd for c in self.llm_calls if c.cost_usd is not None]
        return {
            "calls": len(self.llm_calls),
            "input_tokens": sum(c.input_tokens or 0 for c in self.llm_calls),
            "output_tokens": sum(c.output_tokens or 0 for c in self.llm_calls),
            "cost_usd": sum(costs) if costs else None,
        }

    def to_dict(self, *, with_result: bool = True) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        data["llm_calls"] = [dict(c.__dict__) for c in self.llm_calls]
        data["llm_totals"] = self.llm_totals
        data["checkpoints"] = [dict(c.__dict__, duration=c.duration) for c in self.checkpoints]
        if with_result:
            data["result"] = self.result
        return data


class ExecutionsClient:
    def __init__(self, store: MetadataStore, hand_off: HandOff = run_in_background) -> None:
        self._store = store
        self._hand_off = hand_off
        """What runs an execution that input made runnable again (a server's worker)."""

    def _build(self, record: ExecutionRecord) -> Execution:
        journal = self._store.load_journal(record.id)
        pending = self._waits_of(record) if record.status == Status.WAITING else []
        return Execution(
            exec_id=record.id,
            flow_name=record.flow_name,
            status=record.status,
            stack=record.stack,
            checkpoints=[
                CheckpointInfo(
                    position=e.position,
                    name=e.name,
                    status=e.status,
                    kind=e.kind,
                    attempts=e.attempts,
                    started_at=e.started_at,
                    ended_at=e.ended_at,
                    artifact_id=e.output_artifact_id,
                    error=e.error,
                    metadata=_without_inputs(e.metadata),
                    inputs=e.metadata.get(INPUTS),
                )
                for e in journal.values()
            ],
            error=record.error,
            original_exec_id=record.original_exec_id,
            started_at=record.started_at,
            ended_at=record.ended_at,
            created_at=record.created_at,
            runs=record.runs,
            metadata=record.metadata,
            lease_owner=record.lease_owner,
            wake_at=record.wake_at,
            queue_key=record.queue_key,
            parent_exec_id=record.parent_exec_id,
            pending_wait=pending[0] if pending else None,
            llm_calls=self._store.llm_calls(record.id),
            budget=record.options.get("budget"),
            code_version=record.code_version,
            code_archive=record.code_archive,
            started_by=record.started_by,
            run_starts=list(record.options.get(RUN_STARTS, ())),
            _record=record,
        )

    def _waits_of(self, record: ExecutionRecord) -> builtins.list[WaitRecord]:
        """Its pending waits; for a parent waiting on a child flow, the child's."""
        pending = self._store.waits.pending(record.id)
        if pending:
            return pending
        for child in self._store.children(record.id):
            if child.status == Status.WAITING:
                return self._waits_of(child)
        return []

    def get(self, exec_id: str) -> Execution:
        return self._build(self._store.require_execution(exec_id))

    def list(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        parent: str | None = None,
        code_version: str | None = None,
    ) -> list[Execution]:
        """Newest first; ``parent``: only the child flows of that execution;
        ``code_version``: only executions that run that code."""
        if status is not None and status not in STATUSES:
            raise KitaruUsageError(f"{status!r} is not a status; use one of {', '.join(STATUSES)}")
        if parent is not None:
            parent = self._store.require_execution(parent).id
        return [
            self._build(r)
            for r in self._store.list_executions(
                flow=flow, status=status, limit=limit, parent=parent, code_version=code_version
            )
        ]

    def latest(self, *, flow: str | None = None, status: str | None = None) -> Execution | None:
        found = self.list(flow=flow, status=status, limit=1)
        return found[0] if found else None

    def resume(self, exec_id: str, *, code: str = "recorded") -> FlowHandle[Any]:
        """Run a crashed or waiting execution again; completed checkpoints are not rerun.
        ``code="current"`` moves it to today's code first (see ``retry``)."""
        record = self._moved(exec_id, code)
        get_stack(record.stack).orchestrator.resume(record.id)
        return FlowHandle(record.id)

    def retry(self, exec_id: str, *, code: str = "recorded") -> FlowHandle[Any]:
        """Continue a failed execution from its last completed checkpoint. It runs the
        code it recorded (its source archive, with ``code: archive``); ``code="current"``
        moves it to today's code first, deliberately (``kitaru.patched()`` branches keep
        it on its recorded path)."""
        record = self._moved(exec_id, code)
        get_stack(record.stack).orchestrator.resume(record.id, retry=True)
        return FlowHandle(record.id)

    def _moved(self, exec_id: str, code: str) -> ExecutionRecord:
        if code not in ("recorded", "current"):
            raise KitaruUsageError(
                f"code={code!r}: use 'recorded' (the code it started with, the default) or "
                "'current' (move it to today's code)"
            )
        record = self._store.require_execution(exec_id)
        if code == "current":
            from kitaru_core.runtime.upgrade import move_to_current

            move_to_current(record.id, self._store)
        return record

    def replay(
        self,
        exec_id: str,
        *,
        from_: str | int,
        overrides: dict[str, Any] | None = None,
        **flow_inputs: Any,
    ) -> FlowHandle[Any]:
        """A new execution reusing ``exec_id``'s record before ``from_`` (see Flow.replay)."""
        source = self._store.require_execution(exec_id)
        flow = trust.trusted_flow(source)
        return FlowHandle(
            start_replay(source, flow, from_=from_, overrides=overrides, flow_inputs=flow_inputs)
        )

    def pending_waits(self, exec_id: str | None = None) -> builtins.list[WaitRecord]:
        """Waits nobody has answered yet, of one execution or of all."""
        if exec_id is not None:
            exec_id = self._store.require_execution(exec_id).id
        return self._store.waits.pending(exec_id)

    def input(
        self, exec_id: str, *, wait: str | None = None, value: Any, resume: bool = True
    ) -> Execution:
        """Answer a wait. The value must fit the wait's schema, else
        ``KitaruWaitValidationError`` and nothing is stored. With ``resume`` the stack's
        orchestrator resumes the execution (the local one in a worker process)."""
        record, _wait = give_input(exec_id, wait, value)
        current = self._store.get_execution(record.id)
        # A runner still letting go (status running) picks the answer up itself; else
        # claim it (a worker expiring the wait at this moment may claim it instead).
        if resume and current is not None and current.status == Status.WAITING:
            continue_stopped(self._store, current, self._hand_off)
        return self.get(record.id)

    def abort_wait(self, exec_id: str, *, wait: str | None = None) -> Execution:
        """Refuse a wait: the execution ends ``cancelled`` and runs nothing more."""
        return self.get(abort_wait(exec_id, wait).id)

    def cancel(self, exec_id: str) -> Execution:
        record = self._store.require_execution(exec_id)
        if record.status in TERMINAL_STATUSES:
            raise KitaruStateError(
                f"execution {record.id} has already ended ({record.status}); nothing to cancel"
            )
        get_stack(record.stack).orchestrator.cancel(record.id)
        return self.get(record.id)

    def delete(self, *exec_ids: str) -> Deleted:
        """Delete ended executions, their journals, LLM call records and logs, and the
        artifacts no other execution or memory version refers to."""
        records = [self._store.require_execution(e) for e in exec_ids]
        return retention.delete_executions(self._store, records)

    def prunable(
        self,
        *,
        older_than: float,
        statuses: Iterable[str] = retention.PRUNABLE,
        limit: int | None = None,
    ) -> builtins.list[ExecutionRecord]:
        """Ended executions created more than ``older_than`` seconds ago, newest first."""
        return retention.prunable(
            self._store, older_than=older_than, statuses=statuses, limit=limit
        )

    def prune(
        self,
        *,
        older_than: float,
        statuses: Iterable[str] = retention.PRUNABLE,
        on_page: Callable[[Deleted], None] | None = None,
    ) -> Deleted:
        """Delete ended executions created more than ``older_than`` seconds ago, a page
        at a time (``on_page`` hears the running totals)."""
        return retention.prune(
            self._store, older_than=older_than, statuses=statuses, on_page=on_page
        )

    def logs(self, exec_id: str, *, tail: int | None = None) -> str:
        """The execution's log: runs, retries, failures, and what its runs printed
        (shipped to the store by each runner; else read where they ran, from pods);
        with ``tail``, the last ``tail`` lines of each part."""
        record = self._store.require_execution(exec_id)
        path = log_path(record.id)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:]) if tail > 0 else ""
        printed = self._store.output.read(record.id)
        if printed and printed[0][0] == EVENTS_RUN:  # logged through a server
            events = printed.pop(0)[1]
            if tail is not None:
                events = "".join(events.splitlines(keepends=True)[-tail:]) if tail > 0 else ""
            text += events
        for run, output in printed:
            if tail is not None:
                output = "".join(output.splitlines(keepends=True)[-tail:]) if tail > 0 else ""
            text += f"--- run {run} printed ---\n{output}"
        if printed:  # the runs shipped what they printed: the pods' logs say it again
            return text
        elsewhere = get_stack(record.stack).orchestrator.logs(record.id, tail=tail)
        return text + (elsewhere or "")


class ArtifactsClient:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def _ref(self, record: ArtifactRecord, stack_name: str) -> ArtifactRef:
        stack = get_stack(stack_name)
        return ArtifactRef(
            id=record.id,
            exec_id=record.exec_id,
            name=record.name,
            role=record.role,
            artifact_type=record.artifact_type,
            serializer=record.serializer,
            type_ref=record.type_ref,
            size=record.size,
            uri=stack.artifacts.uri(record),
            created_at=record.created_at,
            position=record.position,
            tags=record.tags,
            _record=record,
            _stack=stack_name,
        )

    def list(self, exec_id: str, *, name: str | None = None) -> list[ArtifactRef]:
        record = self._store.require_execution(exec_id)
        return [
            self._ref(a, record.stack) for a in self._store.list_artifacts(record.id, name=name)
        ]

    def get(self, artifact_id: str) -> ArtifactRef:
        record = self._store.get_artifact(artifact_id)
        if record is None:
            raise KitaruNotFoundError(f"no artifact with id {artifact_id!r}")
        execution = self._store.get_execution(record.exec_id or "")
        return self._ref(record, execution.stack if execution else "local")


class MemoriesClient:
    """Versioned memory from outside a flow; every call names its scope
    (``namespace`` by default, or ``flow`` with the flow's name, or ``execution``)."""

    def scope(self, scope: str = "default", scope_type: str = "namespace") -> MemoryScope:
        return MemoryScope(scope_type, scope)

    def get(
        self,
        key: str,
        *,
        scope: str = "default",
        scope_type: str = "namespace",
        version: int | None = None,
        default: Any = None,
    ) -> Any:
        return self.scope(scope, scope_type).get(key, version=version, default=default)

    def get_entry(
        self,
        key: str,
        *,
        scope: str = "default",
        scope_type: str = "namespace",
        version: int | None = None,
    ) -> MemoryEntry | None:
        return self.scope(scope, scope_type).get_entry(key, version=version)

    def set(
        self,
        key: str,
        value: Any,
        *,
        scope: str = "default",
        scope_type: str = "namespace",
        expected_version: int | None = None,
    ) -> int:
        """Write a new version. The value is data from outside any flow: it must be
        plain JSON (dict, list, str, int, float, bool, None), never an object."""
        return self.scope(scope, scope_type).set(
            key, value, expected_version=expected_version, data_only=True
        )

    def delete(self, key: str, *, scope: str = "default", scope_type: str = "namespace") -> int:
        return self.scope(scope, scope_type).delete(key)

    def list(
        self, prefix: str | None = None, *, scope: str = "default", scope_type: str = "namespace"
    ) -> builtins.list[MemoryEntry]:
        return self.scope(scope, scope_type).list(prefix)

    def history(
        self, key: str, *, scope: str = "default", scope_type: str = "namespace"
    ) -> builtins.list[MemoryEntry]:
        return self.scope(scope, scope_type).history(key)


class KitaruClient:
    """Entry point for reading and steering executions, from any process.

    Logged in to a ``kitaru serve`` (``kitaru login``, or ``KITARU_SERVER_URL`` with
    ``KITARU_TOKEN``) it reads and writes through that server instead of the database,
    and gives the same results (``kitaru_core/remote.py``)."""

    def __init__(self) -> None:
        settings = load_settings()
        store = get_store(settings)
        if settings.server_url is not None:
            from kitaru_core.remote import ServerExecutions

            transport = cast(Any, store).transport
            self.executions: ExecutionsClient = ServerExecutions(store, transport)
        else:
            self.executions = ExecutionsClient(store)
        self.artifacts = ArtifactsClient(store)
        self.memories = MemoriesClient()
        self.schedules = Schedules(store)

    def diff(self, exec_a: str, exec_b: str) -> ExecutionDiff:
        """Compare two executions step by step (``kitaru.diff``)."""
        from kitaru_core.diff import diff

        return diff(exec_a, exec_b)
