"""Whether a ``kitaru worker`` is alive: what ``worker status``, ``executions get`` and a
failed hand-over tell the user, from the ``workers`` table."""

from __future__ import annotations

import time

from kitaru_core.runtime import lease
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import WorkerRecord

IDLE_BEAT_SECONDS = 300.0
"""How often an idle worker says it is alive: its budget is about one query a second."""


def is_alive(worker: WorkerRecord, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if worker.counts.get("state") == "stopped":
        return False
    if lease.on_this_host(worker.id):  # a killed worker never said it stopped
        return lease.owner_is_alive(worker.id, worker.heartbeat_at, now)
    return now - worker.heartbeat_at < 2 * IDLE_BEAT_SECONDS


def serves(store: MetadataStore, stack: str) -> bool:
    """Whether a live worker runs ``stack``: it recovers what that stack's runs leave."""
    now = time.time()
    return any(w.stack == stack and is_alive(w, now) for w in store.workers.list())
