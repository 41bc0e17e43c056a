"""Child flows: ``other_flow.run(...)`` or ``.start(...)`` called in a flow body.

The call is a step of the parent (kind ``flow``, named after the child flow). The child
gets the id ``PARENT.POSITION``, so however often the parent's body runs again, it
starts one child: a resumed parent finds the child by that id and never starts a
second. The step records the child's id once the child has ended (``run``) or been
handed over (``start``); the parent reads the child's result through its handle.

While a child it ``run``s waits for input (or sleeps), the parent stops too
(``waiting``): no process is held for either. When the child ends, it wakes its
parent, whose body runs again and gets the child's outcome from the journal. Cancelling
a parent cancels its unfinished children (``MetadataStore.cancel``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from kitaru_core.errors import KitaruStateError
from kitaru_core.runtime.context import ExecutionContext, Suspended
from kitaru_core.runtime.dispatch import hand_off_new, run_when_admitted
from kitaru_core.runtime.engine import create_execution
from kitaru_core.runtime.flow_ref import FlowDefinition
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.orchestration import wait_for_execution
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import ExecutionRecord, Status

_STOPPED = (Status.WAITING, Status.SLEEPING)


class ChildSuspended(Suspended):
    """Unwinds a parent's flow body while a child it runs waits or sleeps."""

    status = "waiting"


def child_id(parent: ExecutionContext, position: int) -> str:
    return f"{parent.exec_id}.{position}"


def start_child(
    parent: ExecutionContext,
    flow: FlowDefinition[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    stack: str | None,
    background: bool,
) -> str:
    """The child execution's id, once it has ended (``background``: once handed over)."""

    def run(step: Any) -> str:
        target = get_stack(stack or flow.stack or parent.stack.name)
        created = create_execution(
            flow,
            args,
            kwargs,
            stack=target,
            exec_id=child_id(parent, step.position),
            parent=(parent.exec_id, step.position),
        )
        child = created.record
        if background:
            if created.new:
                hand_off_new(child, target)
        else:
            child = _run_to_a_stop(parent.store, child, created.new)
            if child.status in _STOPPED:
                log_event(
                    parent.exec_id,
                    f"waiting for child {child.id} ({child.flow_name}), which is {child.status}",
                )
                raise ChildSuspended(step.name)
        return str(step.complete(child.id, metadata={"child": child.id, "status": child.status}))

    return parent.step(flow.name, "flow", run)


def _run_to_a_stop(store: MetadataStore, child: ExecutionRecord, new: bool) -> ExecutionRecord:
    """Run the child here until it ends or stops to wait or sleep (a queued one first
    takes its turn, as ``run`` does); if another process runs it, wait for that one."""
    stack = get_stack(child.stack)
    if new:
        if child.status == Status.QUEUED:
            run_when_admitted(child, stack)
        else:
            stack.orchestrator.start(child.id)
    elif child.status == Status.RUNNING:
        # Its process may have died with the parent's: resume it here (unless a live
        # process runs it, which the lease tells).
        with contextlib.suppress(KitaruStateError):
            stack.orchestrator.resume(child.id)
    wait_for_execution(child.id)
    return store.require_execution(child.id)
