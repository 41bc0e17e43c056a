"""Reading the event log (rows written by triggers; see migration 0007)."""

from __future__ import annotations

from typing import Any

from kitaru_core.store.database import Database
from kitaru_core.store.records import EventRecord


class EventLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def after(
        self, last_id: int, *, exec_id: str | None = None, limit: int = 500
    ) -> list[EventRecord]:
        """Events with an id above ``last_id``, oldest first (of one execution, or all)."""
        sql = f"SELECT {EventRecord.COLUMNS} FROM events WHERE id > :last"
        params: dict[str, Any] = {"last": last_id}
        if exec_id is not None:
            sql += " AND exec_id = :exec_id"
            params["exec_id"] = exec_id
        sql += f" ORDER BY id LIMIT {int(limit)}"
        return [EventRecord.from_row(r) for r in self.db.fetchall(sql, params)]

    def latest_id(self) -> int:
        row = self.db.fetchone("SELECT MAX(id) FROM events")
        return int(row[0]) if row and row[0] is not None else 0

    def forget_before(self, when: float) -> int:
        """Drop events older than ``when`` (the worker's retention)."""
        return self.db.execute("DELETE FROM events WHERE at < :when", {"when": when})
