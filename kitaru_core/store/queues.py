"""Admission to a flow's queue: at most ``concurrency`` executions of the flow run at
once, and executions with the same key run one at a time, each in start order.

Whoever admits (a starting process, a worker) does it in one transaction under the
queue's lock (PostgreSQL: an advisory lock; SQLite: its single writer), so two
admitters never both take the last free place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kitaru_core.store.database import Database
from kitaru_core.store.records import ExecutionRecord, Status

_BATCH = 500
_HOLDS_KEY = "('running', 'sleeping', 'waiting')"


class QueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def admit(
        self,
        queue: str,
        at_most: int | None = None,
        accepts: Callable[[ExecutionRecord], bool] | None = None,
        *,
        only: list[str] | None = None,
    ) -> list[ExecutionRecord]:
        """Move the queued executions that may run now (``at_most`` of them, and only
        those ``accepts`` takes, or whose ids are in ``only``) to ``running`` (no lease
        yet, a fresh heartbeat) and return them, oldest first; the caller runs them.
        ``only`` is ``accepts`` for a caller across HTTP: it sent the ids it accepts
        among :meth:`queued`, and anything queued since waits for its next pass."""
        if only is not None:
            chosen = set(only)
            accepts = lambda record: record.id in chosen  # noqa: E731
        with self.db.transaction() as db:
            db.lock(f"queue:{queue}")
            queued = self._queued(db, queue)
            if not queued:
                return []
            row = db.fetchone(
                "SELECT COUNT(*) FROM executions WHERE queue = :q AND status = 'running'",
                {"q": queue},
            )
            running = int(row[0]) if row else 0
            # A key is held by its execution until that one ends: a waiting or
            # sleeping execution still holds it (one at a time means one at a time).
            busy = {
                r[0]
                for r in db.fetchall(
                    "SELECT DISTINCT queue_key FROM executions WHERE queue = :q "
                    f"AND status IN {_HOLDS_KEY} AND queue_key IS NOT NULL",
                    {"q": queue},
                )
            }
            admitted: list[ExecutionRecord] = []
            now = time.time()
            for record in queued:
                if at_most is not None and len(admitted) >= at_most:
                    break
                limit = record.options.get("concurrency")
                if limit is not None and running >= int(limit):
                    break  # every later one waits for the same free place
                if accepts is not None and not accepts(record):
                    if record.queue_key is not None:
                        busy.add(record.queue_key)  # its key's later ones wait behind it
                    continue
                if record.queue_key is not None:
                    if record.queue_key in busy:
                        continue
                    busy.add(record.queue_key)  # later ones with this key come after it
                db.execute(
                    "UPDATE executions SET status = 'running', lease_owner = NULL, "
                    "lease_heartbeat = :now WHERE id = :id AND status = 'queued'",
                    {"id": record.id, "now": now},
                )
                record.status = Status.RUNNING
                record.lease_heartbeat = now
                running += 1
                admitted.append(record)
            return admitted

    def queued(self, queue: str) -> list[ExecutionRecord]:
        """The oldest queued executions of ``queue``: those :meth:`admit` looks at."""
        return self._queued(self.db, queue)

    @staticmethod
    def _queued(db: Any, queue: str) -> list[ExecutionRecord]:
        return [
            ExecutionRecord.from_row(r)
            for r in db.fetchall(
                f"SELECT {ExecutionRecord.COLUMNS} FROM executions WHERE queue = :q "
                f"AND status = 'queued' ORDER BY created_at, id LIMIT {_BATCH}",
                {"q": queue},
            )
        ]

    def with_queued(self, stack: str | None = None) -> list[str]:
        """The queues that have executions waiting for a place."""
        sql = "SELECT DISTINCT queue FROM executions WHERE status = 'queued'"
        params = {}
        if stack is not None:
            sql += " AND stack = :stack"
            params["stack"] = stack
        return [r[0] for r in self.db.fetchall(sql, params)]
