"""Rows of the ``memory`` table: every write of a key is a new version; a delete writes a
tombstone version. Versions are numbered per (scope type, scope, key) from 1."""

from __future__ import annotations

import time
from typing import Any

from kitaru_core.errors import KitaruStateError
from kitaru_core.store.database import Database
from kitaru_core.store.records import ArtifactRecord, JournalEntry, MemoryRecord
from kitaru_core.store.statements import INSERT_ARTIFACT, INSERT_ENTRY

_SELECT = f"SELECT {MemoryRecord.COLUMNS} FROM memory"
_WHERE_KEY = " WHERE scope_type = :scope_type AND scope = :scope AND key = :key"


class MemoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(
        self, scope_type: str, scope: str, key: str, version: int | None = None
    ) -> MemoryRecord | None:
        params: dict[str, Any] = {"scope_type": scope_type, "scope": scope, "key": key}
        if version is None:
            sql = _SELECT + _WHERE_KEY + " ORDER BY version DESC LIMIT 1"
        else:
            sql = _SELECT + _WHERE_KEY + " AND version = :version"
            params["version"] = version
        row = self.db.fetchone(sql, params)
        return MemoryRecord.from_row(row) if row else None

    def history(self, scope_type: str, scope: str, key: str) -> list[MemoryRecord]:
        rows = self.db.fetchall(
            _SELECT + _WHERE_KEY + " ORDER BY version DESC",
            {"scope_type": scope_type, "scope": scope, "key": key},
        )
        return [MemoryRecord.from_row(r) for r in rows]

    def latest(self, scope_type: str, scope: str, prefix: str | None) -> list[MemoryRecord]:
        """The newest version of every key (tombstones included), by key."""
        params: dict[str, Any] = {"scope_type": scope_type, "scope": scope}
        sql = (
            _SELECT + " m WHERE scope_type = :scope_type AND scope = :scope AND version = "
            "(SELECT MAX(version) FROM memory n WHERE n.scope_type = m.scope_type "
            "AND n.scope = m.scope AND n.key = m.key)"
        )
        if prefix:
            sql += " AND key LIKE :prefix"
            params["prefix"] = (
                prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            sql += " ESCAPE '\\'"
        rows = self.db.fetchall(sql + " ORDER BY key", params)
        return [MemoryRecord.from_row(r) for r in rows]

    def write(
        self,
        *,
        scope_type: str,
        scope: str,
        key: str,
        value: ArtifactRecord | None,
        exec_id: str | None,
        stack: str,
        expected_version: int | None = None,
        journal: tuple[JournalEntry, list[ArtifactRecord]] | None = None,
    ) -> MemoryRecord:
        """Append the next version (a tombstone when ``value`` is None).

        With ``expected_version`` this is compare-and-set: it fails with
        ``KitaruStateError`` unless the key's newest version is that one (0: no version).
        ``journal``: an entry (and its artifacts) committed in the same transaction, so a
        flow body's write is recorded exactly when it happens.
        """
        where = {"scope_type": scope_type, "scope": scope, "key": key}
        for _ in range(20):
            try:
                with self.db.transaction() as db:
                    row = db.fetchone("SELECT MAX(version) FROM memory" + _WHERE_KEY, where)
                    current = int(row[0]) if row and row[0] is not None else 0
                    if expected_version is not None and current != expected_version:
                        raise _conflict(key, expected_version, current)
                    record = MemoryRecord(
                        scope_type=scope_type,
                        scope=scope,
                        key=key,
                        version=current + 1,
                        artifact_id=value.id if value else None,
                        exec_id=exec_id,
                        stack=stack,
                        created_at=time.time(),
                    )
                    if value is not None:
                        db.execute(INSERT_ARTIFACT, value.params())
                    db.execute(
                        f"INSERT INTO memory ({MemoryRecord.COLUMNS}) VALUES (:scope_type, "
                        ":scope, :key, :version, :artifact_id, :exec_id, :stack, :created_at)",
                        dict(record.__dict__),
                    )
                    if journal is not None:
                        entry, artifacts = journal
                        for artifact in artifacts:
                            db.execute(INSERT_ARTIFACT, artifact.params())
                        db.execute(INSERT_ENTRY, entry.params())
                return record
            except self.db.integrity_error:
                # Another writer took this version between our read and our insert.
                if expected_version is not None:
                    raise _conflict(key, expected_version, None) from None
        raise KitaruStateError(f"memory key {key!r} is being written too often to append to")


def _conflict(key: str, expected: int, current: int | None) -> KitaruStateError:
    now = f"it is now at version {current}" if current is not None else "another write won"
    return KitaruStateError(
        f"memory key {key!r} was expected at version {expected}, but {now}: someone else "
        "wrote it first. Read it again and retry the update with the new version"
    )
