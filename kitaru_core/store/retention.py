"""Deleting executions and what only they refer to, in the metadata store.

An artifact row survives when anything that survives refers to it: another
execution's journal (a replay copies its source's entries), a result, a wait's answer,
an LLM call, or any memory version. The caller deletes blobs afterwards, and only
those whose content key no surviving row holds (keys are content hashes, shared) and
no writer noted lately (``blob_writes``: a writer notes a key before it puts or reuses
the blob, and commits the row that refers to it only afterwards).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kitaru_core.store.database import Database

_CHUNK = 400
BLOB_WRITE_SECONDS = 600.0
"""How long a noted blob write protects its blob: ten times what a run waits for a lost
database between its put and its commit (``RUNNER_PATIENCE``). A blob deleted sooner
after its write is left for a later ``kitaru artifacts gc``."""

# Artifact ids that something outside the doomed executions refers to.
_REFERENCED_ELSEWHERE = """
SELECT output_artifact_id FROM journal WHERE exec_id NOT IN ({ids}) AND output_artifact_id IN ({arts})
UNION SELECT result_artifact_id FROM executions WHERE id NOT IN ({ids}) AND result_artifact_id IN ({arts})
UNION SELECT value_artifact_id FROM waits WHERE exec_id NOT IN ({ids}) AND value_artifact_id IN ({arts})
UNION SELECT prompt_artifact_id FROM llm_calls WHERE (exec_id IS NULL OR exec_id NOT IN ({ids})) AND prompt_artifact_id IN ({arts})
UNION SELECT response_artifact_id FROM llm_calls WHERE (exec_id IS NULL OR exec_id NOT IN ({ids})) AND response_artifact_id IN ({arts})
UNION SELECT artifact_id FROM memory WHERE artifact_id IN ({arts})
"""


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _placeholders(prefix: str, values: list[str]) -> tuple[str, dict[str, Any]]:
    names = [f"{prefix}{i}" for i in range(len(values))]
    return ", ".join(":" + n for n in names), dict(zip(names, values, strict=True))


class RetentionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def delete_executions(self, exec_ids: list[str]) -> list[tuple[str, str]]:
        """Delete these executions with their journals, waits, LLM call records and the
        artifact rows nothing else refers to; returns (stack, key) of each deleted
        artifact whose bytes live in an artifact store, for the caller to check and
        delete. One transaction per chunk of executions."""
        blobs: list[tuple[str, str]] = []
        for chunk in _chunks(exec_ids):
            with self.db.transaction() as db:
                ids_sql, params = _placeholders("e", chunk)
                # Their own artifacts, and those their journals took from a source that
                # was deleted before them (a replay refers to its source's outputs).
                rows = db.fetchall(
                    "SELECT a.id, a.key, a.inline IS NULL, x.stack FROM artifacts a "
                    "JOIN executions x ON x.id = a.exec_id "
                    f"WHERE a.exec_id IN ({ids_sql})",
                    params,
                ) + db.fetchall(
                    "SELECT a.id, a.key, a.inline IS NULL, x.stack FROM journal j "
                    "JOIN artifacts a ON a.id = j.output_artifact_id "
                    "JOIN executions x ON x.id = j.exec_id "
                    f"WHERE j.exec_id IN ({ids_sql}) AND a.exec_id NOT IN ({ids_sql})",
                    params,
                )
                doomed = {r[0]: r for r in rows}
                kept: set[str] = set()
                for arts in _chunks(list(doomed)):
                    arts_sql, arts_params = _placeholders("a", arts)
                    kept.update(
                        r[0]
                        for r in db.fetchall(
                            _REFERENCED_ELSEWHERE.format(ids=ids_sql, arts=arts_sql),
                            {**params, **arts_params},
                        )
                    )
                for table, column in (
                    ("events", "exec_id"),
                    ("journal", "exec_id"),
                    ("waits", "exec_id"),
                    ("llm_calls", "exec_id"),
                    ("run_output", "exec_id"),
                    ("executions", "id"),
                ):
                    db.execute(f"DELETE FROM {table} WHERE {column} IN ({ids_sql})", params)
                gone = [a for a in doomed if a not in kept]
                for arts in _chunks(gone):
                    arts_sql, arts_params = _placeholders("a", arts)
                    db.execute(f"DELETE FROM artifacts WHERE id IN ({arts_sql})", arts_params)
                blobs.extend((doomed[a][3], doomed[a][1]) for a in gone if doomed[a][2])
        return blobs

    def note_blob_write(self, key: str) -> None:
        """A writer is about to put (or reuse) the blob under ``key``: keep it."""
        self.db.execute(
            "INSERT INTO blob_writes (key, written_at) VALUES (:k, :t) "
            "ON CONFLICT (key) DO UPDATE SET written_at = excluded.written_at",
            {"k": key, "t": time.time()},
        )

    def key_is_kept(self, key: str) -> bool:
        """A row refers to ``key``, or a writer noted it lately (its row may follow)."""
        return bool(self.kept_among([key]))

    def forget_blob_writes(self) -> int:
        """Drop notes too old to protect anything; how many."""
        return self.db.execute(
            "DELETE FROM blob_writes WHERE written_at <= :since",
            {"since": time.time() - BLOB_WRITE_SECONDS},
        )

    def kept_among(self, keys: list[str]) -> set[str]:
        """Those of ``keys`` a row refers to or a writer noted lately: one indexed query
        per chunk, so a store of any size is checked a page of keys at a time."""
        kept: set[str] = set()
        since = time.time() - BLOB_WRITE_SECONDS
        for chunk in _chunks(keys):
            keys_sql, params = _placeholders("k", chunk)
            kept.update(
                r[0]
                for r in self.db.fetchall(
                    # Only a row without inline bytes needs the blob (the partial index).
                    f"SELECT key FROM artifacts WHERE inline IS NULL AND key IN ({keys_sql}) "
                    f"UNION SELECT key FROM blob_writes WHERE key IN ({keys_sql}) "
                    "AND written_at > :since",
                    {**params, "since": since},
                )
            )
        return kept
