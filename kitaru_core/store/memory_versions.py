"""Rows of the ``memory`` table: every write of a key is a new version; a delete writes a
tombstone version. Versions are numbered per (scope type, scope, key) from 1."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from kitaru_core.errors import KitaruLeaseLost, KitaruStateError
from kitaru_core.store.database import Database
from kitaru_core.store.leases import still_held
from kitaru_core.store.records import ArtifactRecord, JournalEntry, MemoryRecord

_ATTEMPTS = 50
# The next version is numbered inside the insert: one statement instead of a read and a
# write. With ``expected`` it inserts nothing unless the newest version is that one.
_APPEND = (
    f"INSERT INTO memory ({MemoryRecord.COLUMNS}) SELECT CAST(:scope_type AS VARCHAR), "
    "CAST(:scope AS VARCHAR), CAST(:key AS VARCHAR), COALESCE(MAX(version), 0) + 1, "
    "CAST(:artifact_id AS VARCHAR), CAST(:exec_id AS VARCHAR), CAST(:stack AS VARCHAR), "
    "CAST(:created_at AS DOUBLE PRECISION) FROM memory "
    "WHERE scope_type = :scope_type AND scope = :scope AND key = :key"
)
_COMPARE_AND_APPEND = _APPEND + " HAVING COALESCE(MAX(version), 0) = :expected"
_APPEND += " RETURNING version"
_COMPARE_AND_APPEND += " RETURNING version"
_SELECT = f"SELECT {MemoryRecord.COLUMNS} FROM memory"
_MEMORY_COLUMNS = ", ".join("m." + c for c in MemoryRecord.NAMES)
_ARTIFACT_COLUMNS = ", ".join("a." + c for c in ArtifactRecord.NAMES)
_WHERE_KEY = " WHERE scope_type = :scope_type AND scope = :scope AND key = :key"


class MemoryVersions:
    """Versions of memory keys in the metadata store (every write appends one)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conflicts: dict[str, int] = {}
        """Compare-and-set conflicts in a row, per key, in this process."""

    def _back_off(self, key: str) -> None:
        """After a lost compare-and-set, wait a little (longer after each loss in a
        row) before reporting it. Racing writers then spread out instead of reading
        and failing in lockstep: SQLite's busy handler does this by itself, while
        PostgreSQL's fair lock queue would otherwise make almost every retry stale."""
        streak = self._conflicts[key] = self._conflicts.get(key, 0) + 1
        time.sleep(random.uniform(0, min(0.05, 0.001 * 2**streak)))

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

    def get_with_value(
        self, scope_type: str, scope: str, key: str, version: int | None = None
    ) -> tuple[MemoryRecord, ArtifactRecord | None] | None:
        """A version (the newest by default) with its value's artifact record, in one
        query: a compare-and-set loop reads this on every turn."""
        params: dict[str, Any] = {"scope_type": scope_type, "scope": scope, "key": key}
        sql = (
            f"SELECT {_MEMORY_COLUMNS}, {_ARTIFACT_COLUMNS} FROM memory m "
            "LEFT JOIN artifacts a ON a.id = m.artifact_id "
            "WHERE m.scope_type = :scope_type AND m.scope = :scope AND m.key = :key"
        )
        if version is None:
            sql += " ORDER BY m.version DESC LIMIT 1"
        else:
            sql += " AND m.version = :version"
            params["version"] = version
        row = self.db.fetchone(sql, params)
        if row is None:
            return None
        width = len(MemoryRecord.NAMES)
        artifact = ArtifactRecord.from_row(row[width:]) if row[width] is not None else None
        return MemoryRecord.from_row(row[:width]), artifact

    def scopes(self) -> list[tuple[str, str]]:
        """Every (scope type, scope) that holds a key, by type and name."""
        rows = self.db.fetchall(
            "SELECT DISTINCT scope_type, scope FROM memory ORDER BY scope_type, scope"
        )
        return [(r[0], r[1]) for r in rows]

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
            condition, matched = self.db.prefix_match("key", "prefix", prefix)
            sql += " AND " + condition
            params.update(matched)
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
        journal: JournaledWrite | None = None,
    ) -> MemoryRecord:
        """Append the next version (a tombstone when ``value`` is None).

        With ``expected_version`` this is compare-and-set: it fails with
        ``KitaruStateError`` unless the key's newest version is that one (0: no version).
        ``journal``: an entry (and its artifacts) committed in the same transaction, so a
        flow body's write is recorded exactly when it happens, and only while the run
        writing it still holds its execution's lease.
        """
        where = {"scope_type": scope_type, "scope": scope, "key": key}
        for attempt in range(_ATTEMPTS):
            record = MemoryRecord(
                scope_type=scope_type,
                scope=scope,
                key=key,
                version=0,  # the next one, numbered by the insert itself
                artifact_id=value.id if value else None,
                exec_id=exec_id,
                stack=stack,
                created_at=time.time(),
            )
            try:
                with self.db.transaction() as db:
                    # Plain writers of one key take turns (PostgreSQL: an advisory lock
                    # for this transaction; SQLite: BEGIN IMMEDIATE already serialises),
                    # so a plain write never loses a race for the next version number.
                    # Compare-and-set needs no turn: if another write takes the version
                    # first, the unique version makes this one fail, as it should.
                    if journal is not None:
                        _refuse_unless_leased(db, journal)
                    if expected_version is None:
                        db.lock(f"memory\0{scope_type}\0{scope}\0{key}")
                    if value is not None:
                        db.execute(ArtifactRecord.INSERT, value.params())
                    params = {**record.params(), "expected": expected_version}
                    sql = _APPEND if expected_version is None else _COMPARE_AND_APPEND
                    row = db.fetchone(sql, params)
                    if row is None:
                        current = db.fetchone("SELECT MAX(version) FROM memory" + _WHERE_KEY, where)
                        raise _Stale(int(current[0] or 0) if current else 0)
                    record.version = int(row[0])
                    if journal is not None:
                        for artifact in journal.artifacts:
                            db.execute(ArtifactRecord.INSERT, artifact.params())
                        _insert_entry(db, journal.entry)
                self._conflicts.pop(key, None)
                return record
            except _Stale as stale:
                self._back_off(key)
                raise _conflict(key, expected_version, stale.current) from None  # type: ignore[arg-type]
            except self.db.integrity_error:
                # Another writer took this version between our read and our insert
                # (one that predates the lock, or a database without advisory locks).
                if expected_version is not None:
                    self._back_off(key)
                    raise _conflict(key, expected_version, None) from None
                time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 8)))
        raise KitaruStateError(
            f"memory key {key!r} could not be written after {_ATTEMPTS} attempts; "
            "the metadata store may be overloaded, try again"
        )


@dataclass(frozen=True)
class JournaledWrite:
    """A flow body's memory write as a step: its entry, the artifacts the entry refers
    to, and the lease of the run writing it."""

    entry: JournalEntry
    artifacts: list[ArtifactRecord]
    owner: str | None


def _refuse_unless_leased(db: Database, journal: JournaledWrite) -> None:
    entry = journal.entry
    if journal.owner is not None and not still_held(db, entry.exec_id, journal.owner):
        raise KitaruLeaseLost(
            f"execution {entry.exec_id} is no longer run by this process (another took it "
            f"over); memory write {entry.name!r} was not made"
        )


def _insert_entry(db: Database, entry: JournalEntry) -> None:
    try:
        db.execute(JournalEntry.INSERT, entry.params())
    except db.integrity_error:  # not a lost version race: the step is someone else's
        raise KitaruStateError(
            f"execution {entry.exec_id} already has a journal entry at position "
            f"{entry.position}; another process is running it"
        ) from None


class _Stale(Exception):
    """Compare-and-set found another version than expected (raised inside the
    transaction so that it rolls back before the caller hears of it)."""

    def __init__(self, current: int) -> None:
        self.current = current


def _conflict(key: str, expected: int, current: int | None) -> KitaruStateError:
    if current == 0:
        return KitaruStateError(
            f"memory key {key!r} was expected at version {expected}, but it has never been "
            "written (or was written in another scope); use expected version 0 to create it"
        )
    now = f"it is now at version {current}" if current is not None else "another write won"
    return KitaruStateError(
        f"memory key {key!r} was expected at version {expected}, but {now}: someone else "
        "wrote it first. Read it again and retry the update with the new version"
    )
