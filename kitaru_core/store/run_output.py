"""Rows of the ``run_output`` table: what each run of an execution printed."""

from __future__ import annotations

import time

from kitaru_core.store.database import Database

MAX_BYTES_PER_RUN = 8 * 2**20
"""What one run may keep in the store; past it, a line says where the rest went."""


class RunOutput:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, exec_id: str, run: int, text: str) -> None:
        self.db.execute(
            "INSERT INTO run_output (exec_id, run, at, text) VALUES (:e, :r, :at, :t)",
            {"e": exec_id, "r": run, "at": time.time(), "t": text},
        )

    def read(self, exec_id: str) -> list[tuple[int, str]]:
        """(run, text) of each run that printed anything, in order."""
        rows = self.db.fetchall(
            "SELECT run, text FROM run_output WHERE exec_id = :e ORDER BY id", {"e": exec_id}
        )
        runs: dict[int, list[str]] = {}
        for run, text in rows:
            runs.setdefault(int(run), []).append(text)
        return [(run, "".join(parts)) for run, parts in runs.items()]
