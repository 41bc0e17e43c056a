"""Rows of the ``schedules`` table: cron schedules and the next slot each will fire."""

from __future__ import annotations

import time
from typing import Any

from kitaru_core.store.database import Database
from kitaru_core.store.records import ScheduleRecord

_SELECT = f"SELECT {ScheduleRecord.COLUMNS} FROM schedules"


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, record: ScheduleRecord) -> bool:
        """Insert it; False if a schedule of that name exists."""
        try:
            self.db.execute(ScheduleRecord.INSERT, record.params())
        except self.db.integrity_error:
            return False
        return True

    def get(self, name: str) -> ScheduleRecord | None:
        row = self.db.fetchone(_SELECT + " WHERE name = :name", {"name": name})
        return ScheduleRecord.from_row(row) if row else None

    def list(self, stack: str | None = None) -> list[ScheduleRecord]:
        sql, params = _SELECT, {}
        if stack is not None:
            sql += " WHERE stack = :stack"
            params["stack"] = stack
        return [
            ScheduleRecord.from_row(r) for r in self.db.fetchall(sql + " ORDER BY name", params)
        ]

    def update(self, name: str, **values: Any) -> bool:
        sets = ", ".join(f"{column} = :{column}" for column in values)
        return (
            self.db.execute(
                f"UPDATE schedules SET {sets}, updated_at = :updated_at WHERE name = :name",
                {**values, "name": name, "updated_at": time.time()},
            )
            == 1
        )

    def advance(
        self, name: str, *, observed_next: float, next_at: float, last_exec_id: str | None
    ) -> bool:
        """Move the schedule past the slots just fired, if nobody else did (compare-and-set)."""
        return (
            self.db.execute(
                "UPDATE schedules SET next_at = :next_at, updated_at = :now, "
                "last_exec_id = COALESCE(:last, last_exec_id) "
                "WHERE name = :name AND next_at = :observed",
                {
                    "name": name,
                    "next_at": next_at,
                    "observed": observed_next,
                    "now": time.time(),
                    "last": last_exec_id,
                },
            )
            == 1
        )

    def delete(self, name: str) -> bool:
        return self.db.execute("DELETE FROM schedules WHERE name = :name", {"name": name}) == 1
