"""Rows of the ``waits`` table: what an execution waits for, and the answer once given."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from kitaru_core import clock
from kitaru_core.store.database import Database
from kitaru_core.store.records import ArtifactRecord, WaitRecord

_SELECT = f"SELECT {WaitRecord.COLUMNS} FROM waits"
_SELECT_W = "SELECT " + ", ".join("w." + c for c in WaitRecord.NAMES) + " FROM waits w"


class WaitStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_pending(
        self,
        *,
        exec_id: str,
        name: str,
        position: int,
        question: str | None,
        schema: dict[str, Any],
        schema_name: str,
        metadata: dict[str, Any],
        expires_at: float | None = None,
    ) -> WaitRecord:
        """Record the wait as pending, unless an earlier run already did."""
        existing = self.get(exec_id, name)
        if existing is not None:
            return existing
        pending = WaitRecord(
            exec_id=exec_id,
            name=name,
            position=position,
            status="pending",
            question=question,
            schema=schema,
            schema_name=schema_name,
            metadata=metadata,
            created_at=time.time(),
            expires_at=expires_at,
        )
        # (an earlier runner of this execution may create it at the same moment)
        with contextlib.suppress(self.db.integrity_error):
            self.db.execute(WaitRecord.INSERT, pending.params())
        record = self.get(exec_id, name)
        assert record is not None
        return record

    def get(self, exec_id: str, name: str) -> WaitRecord | None:
        row = self.db.fetchone(
            _SELECT + " WHERE exec_id = :exec_id AND name = :name",
            {"exec_id": exec_id, "name": name},
        )
        return WaitRecord.from_row(row) if row else None

    def for_execution(self, exec_id: str) -> list[WaitRecord]:
        rows = self.db.fetchall(
            _SELECT + " WHERE exec_id = :exec_id ORDER BY position", {"exec_id": exec_id}
        )
        return [WaitRecord.from_row(r) for r in rows]

    def pending(self, exec_id: str | None = None) -> list[WaitRecord]:
        sql = _SELECT + " WHERE status = 'pending'"
        params: dict[str, Any] = {}
        if exec_id is not None:
            sql += " AND exec_id = :exec_id"
            params["exec_id"] = exec_id
        return [
            WaitRecord.from_row(r) for r in self.db.fetchall(sql + " ORDER BY created_at", params)
        ]

    def pending_page(
        self,
        *,
        limit: int,
        after: tuple[float, str, str] | None = None,
        flow: str | None = None,
        name: str | None = None,
        metadata: tuple[str, str] | None = None,
    ) -> list[WaitRecord]:
        """Pending waits oldest first, ``limit`` of them after ``after`` (the created
        time, execution id and name of the last one shown); ``flow``: of that flow's
        executions, ``name``: waits of that name, ``metadata``: (key, value) whose
        metadata holds that key with that value (compared as text)."""
        sql = _SELECT_W + " WHERE w.status = 'pending'"
        params: dict[str, Any] = {}
        if flow is not None:
            sql += " AND w.exec_id IN (SELECT id FROM executions WHERE flow_name = :flow)"
            params["flow"] = flow
        if name is not None:
            sql += " AND w.name = :name"
            params["name"] = name
        if metadata is not None:
            if self.db.dialect == "postgresql":
                field = "(CAST(w.metadata AS jsonb) ->> :meta_key)"
                params["meta_key"] = metadata[0]
            else:  # SQLite: a JSON path, the key quoted inside it
                field = "CAST(json_extract(w.metadata, :meta_path) AS TEXT)"
                params["meta_path"] = "$." + json.dumps(metadata[0])
            sql += f" AND {field} = :meta_value"
            params["meta_value"] = metadata[1]
        if after is not None:
            sql += (
                " AND (w.created_at > :at OR (w.created_at = :at AND (w.exec_id > :id OR "
                "(w.exec_id = :id AND w.name > :wait))))"
            )
            params.update(at=after[0], id=after[1], wait=after[2])
        sql += f" ORDER BY w.created_at, w.exec_id, w.name LIMIT {int(limit)}"
        return [WaitRecord.from_row(r) for r in self.db.fetchall(sql, params)]

    def count_pending(self) -> int:
        """How many waits nobody has answered yet (the inbox's badge)."""
        row = self.db.fetchone("SELECT COUNT(*) FROM waits WHERE status = 'pending'")
        return int(row[0]) if row else 0

    def answer(self, exec_id: str, name: str, value: ArtifactRecord) -> bool:
        """Store the answer if the wait is still pending; False if it no longer is.

        The same transaction makes a waiting execution due now, so a worker continues
        it: an answer whose resume was lost (the process giving it died, or
        ``--no-resume``) is never left behind. A runner that has not stopped yet
        (status ``running``) reads the answer itself."""
        with self.db.transaction() as db:
            changed = db.execute(
                "UPDATE waits SET status = 'answered', value_artifact_id = :artifact, "
                "answered_at = :now WHERE exec_id = :exec_id AND name = :name "
                "AND status = 'pending'",
                {"exec_id": exec_id, "name": name, "artifact": value.id, "now": time.time()},
            )
            if changed:
                db.execute(ArtifactRecord.INSERT, value.params())
                db.execute(  # due by the clock the worker reads (a test's may be manual)
                    "UPDATE executions SET wake_at = :now WHERE id = :exec_id "
                    "AND status = 'waiting'",
                    {"exec_id": exec_id, "now": clock.now()},
                )
        return bool(changed)

    def expire(self, exec_id: str, name: str) -> bool:
        """Nobody answered in time; False if it was answered or aborted first."""
        return (
            self.db.execute(
                "UPDATE waits SET status = 'expired', answered_at = :now "
                "WHERE exec_id = :exec_id AND name = :name AND status = 'pending'",
                {"exec_id": exec_id, "name": name, "now": time.time()},
            )
            == 1
        )

    def abort(self, exec_id: str, name: str) -> bool:
        return (
            self.db.execute(
                "UPDATE waits SET status = 'aborted', answered_at = :now "
                "WHERE exec_id = :exec_id AND name = :name AND status = 'pending'",
                {"exec_id": exec_id, "name": name, "now": time.time()},
            )
            == 1
        )
