"""Handing a claimed execution to whatever runs it.

Every path that makes an execution run again without a person driving it (input that
arrives, a timer or a wait's deadline, a recovery, a place freed in a queue) first
claims it in the store, exactly once (``MetadataStore.dispatch``), then hands it over:
by default to its stack's orchestrator in the background; a worker passes its own
``hand_off`` to run it in its threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kitaru_core.errors import KitaruBackendError, KitaruDispatchError
from kitaru_core.runtime.logs import log_event
from kitaru_core.stack import Stack
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import TERMINAL_STATUSES, ExecutionRecord, Status
from kitaru_core.worker.liveness import serves

HandOff = Callable[[ExecutionRecord], None]


def run_in_background(record: ExecutionRecord) -> None:
    """Its stack's orchestrator runs it elsewhere (the local one: a detached process).
    When the orchestrator cannot be handed it, the execution stays claimed
    (``running``, no process): a worker sees it as never taken and hands it over again,
    so the failure is logged and the caller told whether that will happen."""
    stack = get_stack(record.stack)
    try:
        if record.runs == 0:
            stack.orchestrator.start(record.id, background=True)
        else:
            stack.orchestrator.resume(record.id, background=True)
    except KitaruBackendError as exc:
        raise _not_handed_over(get_store(stack.settings), record, exc) from exc


def _not_handed_over(
    store: MetadataStore, record: ExecutionRecord, exc: KitaruBackendError
) -> KitaruDispatchError:
    log_event(record.id, f"could not be handed to its orchestrator: {exc}")
    will_run = serves(store, record.stack)
    if will_run:
        then = (
            f"a `kitaru worker` of stack {record.stack!r} hands it over again once the "
            "orchestrator answers; do not start it again yourself (it would run twice)"
        )
    else:
        then = (
            f"no `kitaru worker` runs stack {record.stack!r} to hand it over again: start "
            f"one (it does, once the orchestrator answers), or cancel it with `kitaru "
            f"executions cancel {record.id}`"
        )
    return KitaruDispatchError(
        f"execution {record.id} was not started: {exc}. It stays running with no process; {then}",
        exec_id=record.id,
        will_run=will_run,
    )


def admit_and_hand_off(
    store: MetadataStore,
    queue: str,
    hand_off: HandOff = run_in_background,
    at_most: int | None = None,
    accepts: Callable[[ExecutionRecord], bool] | None = None,
) -> list[ExecutionRecord]:
    """Admit what the queue has room for (``at_most`` of them, those ``accepts`` takes)
    and hand each over."""
    admitted = store.queues.admit(queue, at_most, accepts)
    for record in admitted:
        hand_off(record)
    return admitted


def continue_later(
    store: MetadataStore,
    record: ExecutionRecord,
    claim: Callable[[str], bool],
    hand_off: HandOff = run_in_background,
) -> bool:
    """Claim ``record`` with ``claim(to_status)`` and hand it over: straight away, or,
    for a flow with a queue, back through the queue (so its limits hold for resumed
    executions too). False if someone else claimed it first."""
    if not claim(Status.QUEUED if record.queue else Status.RUNNING):
        return False
    if record.queue:
        admit_and_hand_off(store, record.queue, hand_off)
    else:
        hand_off(record)
    return True


def continue_stopped(
    store: MetadataStore, record: ExecutionRecord, hand_off: HandOff = run_in_background
) -> bool:
    """Continue an execution that stopped (to wait, or sleep): claim it from the status
    it has, so of two who try only one succeeds, and hand it over."""
    status = record.status
    return continue_later(
        store,
        record,
        lambda to: store.dispatch(record.id, from_status=status, to_status=to),
        hand_off,
    )


def hand_off_new(
    record: ExecutionRecord, stack: Stack, hand_off: HandOff = run_in_background
) -> None:
    """Hand a new execution over to run elsewhere: a queued one through its queue (it
    may have to wait for its turn), any other straight away."""
    if record.status == Status.QUEUED:
        assert record.queue is not None
        admit_and_hand_off(get_store(stack.settings), record.queue, hand_off)
    else:
        hand_off(record)


def run_when_admitted(record: ExecutionRecord, stack: Stack) -> None:
    """``run`` of a queued execution: take its turn in this process when the queue has
    room (the others it admits on the way go to the background), or, if someone else
    started it meanwhile, wait until it ends or stops to wait."""
    store = get_store(stack.settings)
    assert record.queue is not None
    delay = 0.02
    ours: list[ExecutionRecord] = []

    def hand_off(admitted: ExecutionRecord) -> None:
        if admitted.id == record.id:
            ours.append(admitted)
        else:
            run_in_background(admitted)

    while True:
        admit_and_hand_off(store, record.queue, hand_off)
        if ours:
            stack.orchestrator.start(record.id)
            return
        current = store.require_execution(record.id)
        if current.status not in (Status.QUEUED, Status.RUNNING):
            return
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def wake_parent(store: MetadataStore, child: ExecutionRecord) -> None:
    """A child ended: resume its parent if it stopped to wait for it (and for nothing
    of its own)."""
    if child.parent_exec_id is None or child.status not in TERMINAL_STATUSES:
        return
    parent = store.get_execution(child.parent_exec_id)
    if parent is None or parent.status != Status.WAITING or store.waits.pending(parent.id):
        return
    continue_stopped(store, parent)
