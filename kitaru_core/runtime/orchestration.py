"""What an orchestrator plugin may read of an execution and do to it (through
``kitaru.plugin``): the metadata store stays the truth; an orchestrator only decides
where a run happens, and reports what it saw there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kitaru_core.runtime import lease
from kitaru_core.runtime.logs import log_event
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import ExecutionRecord, Status

RUNNER_MODULE = "kitaru_core.runtime.runner"


@dataclass(frozen=True)
class ExecutionView:
    """An execution as an orchestrator sees it."""

    exec_id: str
    flow_name: str
    stack: str
    status: str
    runs: int
    """How many runs have started; the next one is ``runs + 1``."""
    lease_owner: str | None
    lease_heartbeat: float | None
    ended_at: float | None
    settings: dict[str, Any] = field(default_factory=dict)
    """The flow's ``@flow(settings=...)``, by orchestrator flavor."""


def execution(exec_id: str) -> ExecutionView:
    record = get_store().require_execution(exec_id)
    return ExecutionView(
        exec_id=record.id,
        flow_name=record.flow_name,
        stack=record.stack,
        status=record.status,
        runs=record.runs,
        lease_owner=record.lease_owner,
        lease_heartbeat=record.lease_heartbeat,
        ended_at=record.ended_at,
        settings=dict(record.options.get("settings") or {}),
    )


def store_id() -> str:
    """The metadata store's id: the same from every process that reaches it, so what an
    orchestrator makes outside it (a Job) can say which store it belongs to."""
    return get_store().identity


def statuses(exec_ids: list[str]) -> dict[str, str]:
    """The status of each execution of ``exec_ids`` that exists (deleted ones are left
    out)."""
    return get_store().statuses(exec_ids)


def runner_command(exec_id: str, *, python: str = "python") -> list[str]:
    """The command that runs one execution by id where the orchestrator puts it (a
    container needs Kitaru, the plugins and the user's project installed)."""
    return [python, "-m", RUNNER_MODULE, exec_id]


def claim_for_retry(exec_id: str) -> bool:
    """Make a failed or cancelled execution runnable again, before its next run is
    handed elsewhere: it is ``running`` from now on, so a run that never starts is seen
    and diagnosed like any other. False if it is not failed or cancelled (any more)."""
    store = get_store()
    record = store.require_execution(exec_id)
    if record.status not in (Status.FAILED, Status.CANCELLED):
        return False
    if not store.dispatch(record.id, from_status=record.status, to_status=Status.RUNNING):
        return False
    begin_retry(store, record)
    return True


def begin_retry(store: MetadataStore, record: ExecutionRecord) -> None:
    """Before a retry's run: a flow with ``cache=False`` does its steps' work again, so
    their recorded results are dropped (waits keep their answers). With ``cache=True``,
    the default, the retry reuses every step that completed."""
    if record.options.get("cache", True) is False:
        forgotten = store.forget_results(record.id)
        log_event(
            record.id,
            f"retrying with cache=False: {forgotten} recorded step(s) will run again",
        )


def mark_cancelled(exec_id: str) -> bool:
    """Mark a running, waiting, sleeping or queued execution cancelled; its runner, if
    any, stops at its next step. False if it had already ended."""
    return get_store().cancel(exec_id)


def fail_execution(exec_id: str, reason: str) -> bool:
    """Record that the execution's run died where it ran, before it could record why
    (an image that cannot be pulled, an OOM kill): it ends ``failed`` with ``reason``,
    and ``kitaru executions retry`` starts it again. Nothing happens (False) if a live
    process holds it or it is no longer running."""
    store = get_store()
    record = store.require_execution(exec_id)
    if record.status != Status.RUNNING:
        return False
    owner = record.lease_owner
    if owner is not None and lease.owner_is_alive(owner, record.lease_heartbeat):
        return False
    error = {
        "type": "kitaru.RunDied",
        "message": f"{reason}; fix the cause, then `kitaru executions retry {record.id}`",
    }
    if not store.fail_run(record.id, owner, error, statuses=(Status.RUNNING,)):
        return False
    log_event(record.id, f"failed where it ran: {reason}")
    return True


def wait_for_execution(
    exec_id: str, since: ExecutionView | None = None, timeout: float | None = None
) -> str:
    """Block until the execution has moved on from ``since`` (a later run, or another
    status) and then ended or stopped to wait or sleep; its status then."""
    store = get_store()
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.05
    while True:
        record = store.require_execution(exec_id)
        moved = since is None or record.runs > since.runs or record.status != since.status
        if moved and record.status not in (Status.RUNNING, Status.QUEUED):
            return record.status
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"execution {exec_id} is still {record.status} after {timeout} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


__all__ = [
    "RUNNER_MODULE",
    "ExecutionView",
    "claim_for_retry",
    "execution",
    "fail_execution",
    "mark_cancelled",
    "runner_command",
    "statuses",
    "store_id",
    "wait_for_execution",
]
