"""Handing a claimed execution to whatever runs it.

Every path that makes an execution run again without a person driving it (input that
arrives, a timer or a wait's deadline, a recovery, a place freed in a queue) first
claims it in the store, exactly once (``MetadataStore.dispatch``), then hands it over:
by default to its stack's orchestrator in the background; a worker passes its own
``hand_off`` to run it in its threads.
"""

from __future__ import annotations

from collections.abc import Callable

from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import ExecutionRecord, Status

HandOff = Callable[[ExecutionRecord], None]


def run_in_background(record: ExecutionRecord) -> None:
    """Its stack's orchestrator runs it elsewhere (the local one: a detached process)."""
    orchestrator = get_stack(record.stack).orchestrator
    if record.runs == 0:
        orchestrator.start(record.id, background=True)
    else:
        orchestrator.resume(record.id, background=True)


def admit_and_hand_off(
    store: MetadataStore,
    queue: str,
    hand_off: HandOff = run_in_background,
    at_most: int | None = None,
) -> list[ExecutionRecord]:
    """Admit what the queue has room for (``at_most`` of them) and hand each over."""
    admitted = store.queues.admit(queue, at_most)
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
