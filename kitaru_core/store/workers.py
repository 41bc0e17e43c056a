"""Rows of the ``workers`` table: each running ``kitaru worker``, its heartbeat and counts."""

from __future__ import annotations

import time
from typing import Any

from kitaru_core.store.database import Database
from kitaru_core.store.records import WorkerRecord


class WorkerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def beat(self, worker_id: str, stack: str, started_at: float, counts: dict[str, Any]) -> None:
        """Record that the worker is alive, with what it has done so far."""
        record = WorkerRecord(worker_id, stack, started_at, time.time(), counts)
        # One statement (an idle worker's budget is about one query a second).
        self.db.execute(
            WorkerRecord.INSERT + " ON CONFLICT (id) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at, counts = excluded.counts",
            record.params(),
        )

    def list(self) -> list[WorkerRecord]:
        rows = self.db.fetchall(f"SELECT {WorkerRecord.COLUMNS} FROM workers ORDER BY started_at")
        return [WorkerRecord.from_row(r) for r in rows]

    def remove(self, worker_id: str) -> None:
        self.db.execute("DELETE FROM workers WHERE id = :id", {"id": worker_id})

    def forget_older_than(self, when: float) -> int:
        """Drop workers that stopped beating long ago (killed without a chance to say so)."""
        return self.db.execute("DELETE FROM workers WHERE heartbeat_at < :when", {"when": when})
