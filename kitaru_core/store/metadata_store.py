"""Reading and writing executions, journal entries and artifact records.

Every method is one statement or one transaction; the runtime commits a checkpoint's
journal entry together with its artifact records, after the bytes are in the store.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from kitaru_core.errors import (
    KitaruBackendError,
    KitaruLeaseLost,
    KitaruNotFoundError,
    KitaruStateError,
    KitaruUsageError,
)
from kitaru_core.settings import Settings, load_settings
from kitaru_core.store.database import Database, sqlite_url
from kitaru_core.store.deaths import Death, DeathStore
from kitaru_core.store.events import EventLog
from kitaru_core.store.http_store import HttpMetadataStore
from kitaru_core.store.leases import FENCE, HOLDS, fence_params
from kitaru_core.store.memory_versions import MemoryVersions
from kitaru_core.store.migrations import ensure_schema
from kitaru_core.store.queues import QueueStore
from kitaru_core.store.records import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    ArtifactRecord,
    ExecutionRecord,
    JournalEntry,
    LLMCallRecord,
    Status,
)
from kitaru_core.store.retention import RetentionStore
from kitaru_core.store.run_output import RunOutput
from kitaru_core.store.schedules import ScheduleStore
from kitaru_core.store.stacks import StackStore
from kitaru_core.store.tokens import TokenStore
from kitaru_core.store.waits import WaitStore
from kitaru_core.store.workers import WorkerStore

_JOURNAL_COLUMNS = ", ".join("j." + c for c in JournalEntry.NAMES)
_ARTIFACT_COLUMNS = ", ".join("a." + c for c in ArtifactRecord.NAMES)
# The source's completed entries below a position, copied to another execution.
_COPY_JOURNAL = (
    f"INSERT INTO journal ({JournalEntry.COLUMNS}) SELECT "
    + ", ".join(":target" if c == "exec_id" else c for c in JournalEntry.NAMES)
    + " FROM journal WHERE exec_id = :source AND position < :before AND status = 'completed'"
)
# SQLite: the lease is checked by the entry's own insert (``leases.py``), one statement
# less on every checkpoint.
_FENCED_ENTRY = (
    f"INSERT INTO journal ({JournalEntry.COLUMNS}) SELECT "
    + ", ".join(f":{c}" for c in JournalEntry.NAMES)
    + f" WHERE EXISTS ({HOLDS})"
)
_DELETE_ENTRY = "DELETE FROM journal WHERE exec_id = :exec_id AND position = :position"
# A repeated finish (its first commit's reply was lost) finds the result recorded.
_INSERT_RESULT = ArtifactRecord.INSERT + " ON CONFLICT DO NOTHING"
RUNNER_PATIENCE = 60.0
"""Seconds a run waits for a lost database before its write fails: a restart or a
failover takes a few."""
RUN_STARTS = "run_starts"
"""Where an execution's options keep the time each of its runs began."""
UNFINISHED_SQL = ", ".join(f"'{s}'" for s in UNFINISHED_STATUSES)


class MetadataStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.unsigned_references = False
        """Opened by upgrading a store whose executions' flow references are unsigned:
        the hooks of ``AFTER_UPGRADE`` sign them (the first ``get_store`` after one is
        registered, in the process that upgraded)."""
        self.waits = WaitStore(db)
        self.memory = MemoryVersions(db)
        self.stacks = StackStore(db)
        self.queues = QueueStore(db)
        self.schedules = ScheduleStore(db)
        self.workers = WorkerStore(db)
        self.retention = RetentionStore(db)
        self.tokens = TokenStore(db)
        self.events = EventLog(db)
        self.deaths = DeathStore(db)
        self.output = RunOutput(db)

    @classmethod
    def open(cls, settings: Settings) -> MetadataStore:
        if settings.database_url is None:
            _refuse_lost_database(settings)
        url = settings.database_url or sqlite_url(settings.sqlite_path)
        db = Database(url, durability=settings.durability)
        store = cls(db)
        try:
            store.unsigned_references = ensure_schema(db)
        except BaseException:
            db.close()
            raise
        db.opened()
        return store

    @functools.cached_property
    def identity(self) -> str:
        """This store's id, made once with it: the same from every process and host."""
        row = self.db.fetchone("SELECT id FROM store_identity")
        if row is None:
            raise KitaruBackendError(
                "the metadata store's store_identity table is empty (its one row was "
                "deleted); restore it from a backup, or insert a new random id, which "
                "makes Kitaru lose track of the Kubernetes Jobs it started before"
            )
        return str(row[0])

    # -- executions ------------------------------------------------------------------

    def create_execution(
        self, record: ExecutionRecord, inputs: list[ArtifactRecord]
    ) -> ExecutionRecord:
        """Insert the execution and its input artifacts together; returns the record."""
        with self.db.transaction() as db:
            db.execute(ExecutionRecord.INSERT, record.params())
            if inputs:
                db.executemany(ArtifactRecord.INSERT, [a.params() for a in inputs])
        return record

    def statuses(self, exec_ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for at in range(0, len(exec_ids), 500):
            chunk = exec_ids[at : at + 500]
            names = {f"e{i}": exec_id for i, exec_id in enumerate(chunk)}
            rows = self.db.fetchall(
                f"SELECT id, status FROM executions WHERE id IN "
                f"({', '.join(':' + n for n in names)})",
                names,
            )
            found.update((str(r[0]), str(r[1])) for r in rows)
        return found

    def get_execution(self, exec_id: str) -> ExecutionRecord | None:
        row = self.db.fetchone(
            f"SELECT {ExecutionRecord.COLUMNS} FROM executions WHERE id = :id", {"id": exec_id}
        )
        return ExecutionRecord.from_row(row) if row else None

    def require_execution(self, exec_id: str) -> ExecutionRecord:
        """The execution with this id, or the only one whose id starts with it; else a
        ``KitaruUsageError`` that says which it could not tell apart."""
        record = self.get_execution(exec_id)
        if record is not None:
            return record
        matches = self.find_execution_ids(exec_id) if exec_id else []
        if len(matches) == 1:  # any unique prefix names an execution
            record = self.get_execution(matches[0])
            assert record is not None
            return record
        if matches:
            shown = ", ".join(matches[:4]) + (", ..." if len(matches) > 4 else "")
            raise KitaruUsageError(
                f"the id prefix {exec_id!r} matches several executions ({shown}); give more "
                "of the id"
            )
        raise KitaruNotFoundError(
            f"no execution with id {exec_id!r}; `kitaru executions list` shows them"
        )

    def find_execution_ids(self, prefix: str, limit: int = 5) -> list[str]:
        condition, params = self.db.prefix_match("id", "p", prefix)
        rows = self.db.fetchall(
            f"SELECT id FROM executions WHERE {condition} ORDER BY created_at LIMIT {int(limit)}",
            params,
        )
        return [r[0] for r in rows]

    def unfinished_on_stack(self, stack: str) -> list[str]:
        """Ids of executions on ``stack`` that still run or wait."""
        rows = self.db.fetchall(
            f"SELECT id FROM executions WHERE stack = :stack AND status IN ({UNFINISHED_SQL})",
            {"stack": stack},
        )
        return [r[0] for r in rows]

    def list_executions(
        self,
        *,
        flow: str | None = None,
        status: str | list[str] | None = None,
        limit: int | None = 50,
        created_before: float | None = None,
        stack: str | None = None,
        after: tuple[float, str] | None = None,
        created_after: float | None = None,
        id_prefix: str | None = None,
        parent: str | None = None,
        code_version: str | None = None,
    ) -> list[ExecutionRecord]:
        """Newest first. ``after``: the (created_at, id) of the last execution of the
        previous page, for pages that neither skip nor repeat while executions start."""
        where, params = _execution_filters(
            self.db, flow, status, stack, created_after, created_before, id_prefix, after
        )
        if parent is not None:
            where += (" AND " if where else " WHERE ") + "parent_exec_id = :parent"
            params["parent"] = parent
        if code_version is not None:
            where += (" AND " if where else " WHERE ") + "code_version = :code_version"
            params["code_version"] = code_version
        sql = f"SELECT {ExecutionRecord.COLUMNS} FROM executions{where}"
        sql += " ORDER BY created_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [ExecutionRecord.from_row(r) for r in self.db.fetchall(sql, params)]

    def unfinished_flows(self, stack: str) -> list[ExecutionRecord]:
        """One unfinished execution of each flow of ``stack`` that runs its code where
        it runs (a version, no archive): what a worker checks its own code against."""
        rows = self.db.fetchall(
            f"SELECT {ExecutionRecord.COLUMNS} FROM executions WHERE id IN (SELECT MIN(id) "
            f"FROM executions WHERE stack = :stack AND status IN ({UNFINISHED_SQL}) AND "
            "code_version IS NOT NULL AND code_archive IS NULL GROUP BY flow_ref)",
            {"stack": stack},
        )
        return [ExecutionRecord.from_row(row) for row in rows]

    def unfinished_code_versions(self) -> list[tuple[str, str, int]]:
        """(stack, code version, count) of unfinished executions that import their code
        where they run."""
        rows = self.db.fetchall(
            "SELECT stack, code_version, COUNT(*) FROM executions WHERE status IN "
            f"({UNFINISHED_SQL}) AND code_version IS NOT NULL AND code_archive IS NULL "
            "GROUP BY stack, code_version ORDER BY stack, code_version"
        )
        return [(str(s), str(v), int(n)) for s, v, n in rows]

    def oldest_ids(
        self, *, status: list[str], created_before: float, stack: str | None, limit: int
    ) -> list[str]:
        """Ids of up to ``limit`` executions in ``status`` created before
        ``created_before``, oldest first, read along the creation-time index (no sort):
        what retention deletes a page at a time."""
        where, params = _execution_filters(
            self.db, None, status, stack, None, created_before, None, None
        )
        # SQLite, with no statistics, would take every execution of these statuses
        # through the status index and sort them: 25 ms a page at 50,000.
        table = "executions"
        if self.db.dialect == "sqlite":
            table += " INDEXED BY ix_executions_created"
        sql = f"SELECT id FROM {table}{where} ORDER BY created_at LIMIT {int(limit)}"
        return [r[0] for r in self.db.fetchall(sql, params)]

    def execution_summaries(
        self, *, after: tuple[float, str] | None = None, limit: int = 50, **filters: Any
    ) -> list[dict[str, Any]]:
        """A page of executions as a list shows them, in one query: the execution's own
        columns with its step count, LLM tokens and cost (each from an index).
        ``filters``: those of :func:`_listing_filters`."""
        where, params = _listing_filters(self.db, after, **filters)
        rows = self.db.fetchall(
            "SELECT id, flow_name, status, stack, created_at, started_at, ended_at, "
            "original_exec_id, parent_exec_id, "
            "(SELECT COUNT(*) FROM journal j WHERE j.exec_id = e.id), "
            "(SELECT COUNT(*) FROM llm_calls l WHERE l.exec_id = e.id), "
            "(SELECT SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)) "
            "FROM llm_calls l WHERE l.exec_id = e.id), "
            "(SELECT SUM(cost_usd) FROM llm_calls l WHERE l.exec_id = e.id) "
            f"FROM executions e{where} ORDER BY created_at DESC, id DESC LIMIT {int(limit)}",
            params,
        )
        names = [
            "exec_id",
            "flow_name",
            "status",
            "stack",
            "created_at",
            "started_at",
            "ended_at",
            "original_exec_id",
            "parent_exec_id",
            "steps",
            "llm_calls",
            "llm_tokens",
            "cost_usd",
        ]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def count_summaries(self, **filters: Any) -> int:
        """How many executions the listing's filters match (every page together)."""
        where, params = _listing_filters(self.db, None, **filters)
        row = self.db.fetchone(f"SELECT COUNT(*) FROM executions e{where}", params)
        return int(row[0]) if row else 0

    # -- leases: one process runs an execution at a time --------------------------------

    def claim_lease(self, exec_id: str, owner: str, *, observed_owner: str | None) -> bool:
        """Take the lease if it is still held by ``observed_owner`` (compare-and-swap)."""
        params = {"id": exec_id, "owner": owner, "now": time.time(), "observed": observed_owner}
        if observed_owner is None:
            sql = (
                "UPDATE executions SET lease_owner = :owner, lease_heartbeat = :now "
                "WHERE id = :id AND lease_owner IS NULL"
            )
        else:
            sql = (
                "UPDATE executions SET lease_owner = :owner, lease_heartbeat = :now "
                "WHERE id = :id AND lease_owner = :observed"
            )
        return self.db.execute(sql, params) == 1

    def renew_lease(self, exec_id: str, owner: str) -> str | None:
        """Refresh the heartbeat; returns the execution's status, None if the lease is lost."""
        changed = self.db.execute(FENCE, fence_params(exec_id, owner))
        if not changed:
            return None
        row = self.db.fetchone("SELECT status FROM executions WHERE id = :id", {"id": exec_id})
        return row[0] if row else None

    def release_lease(self, exec_id: str, owner: str) -> None:
        self.db.execute(
            "UPDATE executions SET lease_owner = NULL, lease_heartbeat = NULL "
            "WHERE id = :id AND lease_owner = :owner",
            {"id": exec_id, "owner": owner},
        )

    def mark_started(self, exec_id: str, owner: str) -> None:
        """A run of the execution begins now: counted, and its start kept among the
        options' ``run_starts`` (the UI marks where each run began), in one transaction."""
        now = time.time()
        with self.db.transaction() as db:
            db.lock(f"executions.options:{exec_id}")  # as _merge_json takes it
            row = db.fetchone("SELECT options FROM executions WHERE id = :id", {"id": exec_id})
            options = json.loads(row[0]) if row and row[0] else {}
            options[RUN_STARTS] = [*options.get(RUN_STARTS, ()), now]
            db.execute(
                "UPDATE executions SET status = 'running', runs = runs + 1, ended_at = NULL, "
                "error = NULL, wake_at = NULL, started_at = COALESCE(started_at, :now), "
                "options = :options WHERE id = :id AND lease_owner = :owner",
                {
                    "id": exec_id,
                    "owner": owner,
                    "now": now,
                    "options": json.dumps(options, default=str),
                },
            )

    def finish(
        self,
        exec_id: str,
        owner: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        result: ArtifactRecord | None = None,
        wake_at: float | None = None,
    ) -> ExecutionRecord | None:
        """End the run that ``owner`` holds and release its lease, in one transaction;
        returns the execution as it now is, or None if it was cancelled meanwhile (its
        status is kept). ``wake_at``: when a sleeping or waiting execution is due. A run
        that got this far made progress, so its count of recoveries starts again.

        A lost database is waited for (``RUNNER_PATIENCE``). Repeating it is harmless:
        once it has landed, the lease is no longer ``owner``'s and a repeat changes
        nothing."""
        return self.db.patiently(
            lambda: self._finish(exec_id, owner, status, error, result, wake_at),
            patience=RUNNER_PATIENCE,
        )

    def _finish(
        self,
        exec_id: str,
        owner: str,
        status: str,
        error: dict[str, Any] | None,
        result: ArtifactRecord | None,
        wake_at: float | None,
    ) -> ExecutionRecord | None:
        with self.db.transaction() as db:
            if result is not None:
                db.execute(_INSERT_RESULT, result.params())
            row = db.fetchone(
                "UPDATE executions SET status = :status, error = :error, "
                "result_artifact_id = :result, ended_at = :ended, lease_owner = NULL, "
                "lease_heartbeat = NULL, wake_at = :wake_at, recoveries = 0 "
                "WHERE id = :id AND lease_owner = :owner "
                f"AND status = 'running' RETURNING {ExecutionRecord.COLUMNS}",
                {
                    "id": exec_id,
                    "owner": owner,
                    "status": status,
                    "error": json.dumps(error) if error else None,
                    "result": result.id if result else None,
                    "ended": time.time() if status in TERMINAL_STATUSES else None,
                    "wake_at": wake_at,
                },
            )
            if row is None:
                db.execute(
                    "UPDATE executions SET lease_owner = NULL, lease_heartbeat = NULL "
                    "WHERE id = :id AND lease_owner = :owner",
                    {"id": exec_id, "owner": owner},
                )
        return ExecutionRecord.from_row(row) if row is not None else None

    def fail_run(
        self,
        exec_id: str,
        owner: str | None,
        error: dict[str, Any],
        *,
        statuses: tuple[str, ...] = UNFINISHED_STATUSES,
    ) -> bool:
        """Mark failed an execution whose run cannot go on (its flow would not load; its
        runners kept dying; its pod died), if its lease is still held by ``owner`` (None:
        by nobody) and its status is one of ``statuses``; False if either changed."""
        names = [f"s{i}" for i in range(len(statuses))]
        sql = (
            "UPDATE executions SET status = 'failed', error = :error, ended_at = :now, "
            "wake_at = NULL, lease_owner = NULL, lease_heartbeat = NULL WHERE id = :id "
            f"AND status IN ({', '.join(':' + n for n in names)}) AND "
            + ("lease_owner IS NULL" if owner is None else "lease_owner = :owner")
        )
        params: dict[str, Any] = {
            "id": exec_id,
            "owner": owner,
            "error": json.dumps(error),
            "now": time.time(),
            **dict(zip(names, statuses, strict=True)),
        }
        return self.db.execute(sql, params) == 1

    def forget_results(self, exec_id: str) -> int:
        """Drop what the execution's steps produced (checkpoints, LLM calls, memory
        writes), so its next run does that work again; answers to its waits, timers
        already slept and child executions stay. How many entries went."""
        return self.db.execute(
            "DELETE FROM journal WHERE exec_id = :id AND kind IN ('checkpoint', 'llm', 'memory')",
            {"id": exec_id},
        )

    def cancel(self, exec_id: str) -> bool:
        """Mark a non-terminal execution cancelled, with its unfinished child flows (and
        theirs); each runner stops at its next checkpoint. Their pending waits go: no
        inbox offers an answer nobody will read (a retry asks again)."""
        cancel = (
            "UPDATE executions SET status = 'cancelled', ended_at = :now, wake_at = NULL "
            f"WHERE id = :id AND status IN ({UNFINISHED_SQL})"
        )
        end_waits = "DELETE FROM waits WHERE exec_id = :id AND status = 'pending'"
        now = time.time()
        with self.db.transaction() as db:
            cancelled = db.execute(cancel, {"id": exec_id, "now": now}) == 1
            if cancelled:
                db.execute(end_waits, {"id": exec_id})
            parents = [exec_id]
            while parents:
                ids_sql = ", ".join(f":p{i}" for i in range(len(parents)))
                children = [
                    r[0]
                    for r in db.fetchall(
                        f"SELECT id FROM executions WHERE parent_exec_id IN ({ids_sql}) "
                        f"AND status IN ({UNFINISHED_SQL})",
                        {f"p{i}": p for i, p in enumerate(parents)},
                    )
                ]
                for child in children:
                    if db.execute(cancel, {"id": child, "now": now}):
                        db.execute(end_waits, {"id": child})
                parents = children
        return cancelled

    def children(self, exec_id: str) -> list[ExecutionRecord]:
        """The child flows an execution's body started, in journal order."""
        rows = self.db.fetchall(
            f"SELECT {ExecutionRecord.COLUMNS} FROM executions WHERE parent_exec_id = :id "
            "ORDER BY parent_position",
            {"id": exec_id},
        )
        return [ExecutionRecord.from_row(r) for r in rows]

    def dispatch(
        self,
        exec_id: str,
        *,
        from_status: str,
        to_status: str = Status.RUNNING,
        due_by: float | None = None,
        observed_owner: str | None = None,
        observed_heartbeat: float | None = None,
        recovery: bool = False,
        death: Death | None = None,
    ) -> bool:
        """Claim an execution for one run, exactly once however many processes try:
        move it from ``from_status`` (due by ``due_by``, when given; its lease held by
        ``observed_owner``, a dead process, when given) to ``to_status`` with no lease
        and a fresh heartbeat, so whoever runs it next takes the lease, and an
        execution whose runner never starts is seen as orphaned after a grace period.
        ``recovery``: it is taken from a runner that died, or never started; a ``death``
        that counts against it (``kitaru_core.store.deaths``) is recorded with it."""
        counted = death is not None and death.count > 0
        sql = (
            "UPDATE executions SET status = :to_status, lease_owner = NULL, "
            "lease_heartbeat = :now, wake_at = NULL"
            + (", recoveries = :count, death_step = :step" if counted else "")
            + " WHERE id = :id AND status = :from_status"
        )
        params: dict[str, Any] = {
            "id": exec_id,
            "from_status": from_status,
            "to_status": to_status,
            "now": time.time(),
        }
        if counted:
            assert death is not None
            params.update(count=death.count, step=death.step)
        if due_by is not None:
            sql += " AND wake_at <= :due_by"
            params["due_by"] = due_by
        if observed_owner is not None:
            sql += " AND lease_owner = :observed"
            params["observed"] = observed_owner
        elif recovery:  # orphaned: nobody took it since it was last claimed
            sql += " AND lease_owner IS NULL AND COALESCE(lease_heartbeat, -1) = :beat"
            params["beat"] = -1 if observed_heartbeat is None else observed_heartbeat
        return self.db.execute(sql, params) == 1

    def due_work(self, stack: str, horizon: float) -> list[tuple[Any, ...]]:
        """What a worker of ``stack`` may have to act on, in one query (an idle worker
        makes one per poll): every running or queued execution, every sleeping or
        waiting one due by ``horizon``, and every active schedule due by then. Rows:
        (kind, id, status, lease_owner, lease_heartbeat, due_at, created_at,
        recoveries, queue, runs); kind is ``execution`` or ``schedule``."""
        return self.db.fetchall(
            "SELECT 'execution', id, status, lease_owner, lease_heartbeat, wake_at, "
            "created_at, recoveries, queue, runs FROM executions WHERE stack = :stack AND "
            "(status IN ('running', 'queued') OR "
            "(status IN ('sleeping', 'waiting') AND wake_at <= :horizon)) "
            "UNION ALL SELECT 'schedule', name, 'scheduled', NULL, NULL, next_at, "
            "created_at, 0, NULL, 0 FROM schedules "
            "WHERE stack = :stack AND paused = 0 AND next_at <= :horizon",
            {"stack": stack, "horizon": horizon},
        )

    def running_owners(self, stack: str) -> list[str]:
        """The lease owners of ``stack``'s running executions: a worker watches those on
        its own host, to notice the moment one dies."""
        rows = self.db.fetchall(
            "SELECT DISTINCT lease_owner FROM executions WHERE status = 'running' AND "
            "stack = :stack AND lease_owner IS NOT NULL",
            {"stack": stack},
        )
        return [owner for (owner,) in rows]

    def complete_timer(self, exec_id: str, position: int | None = None) -> int:
        """Mark an execution's sleeping timer (at ``position``, else whichever it has)
        completed: it has fired. Returns how many it marked."""
        sql = (
            "UPDATE journal SET status = 'completed', ended_at = :now "
            "WHERE exec_id = :id AND status = 'sleeping'"
        )
        params: dict[str, Any] = {"id": exec_id, "now": time.time()}
        if position is not None:
            sql += " AND position = :position"
            params["position"] = position
        return self.db.execute(sql, params)

    def wake(self, exec_id: str, *, status: str, due_by: float, to_status: str) -> str | None:
        """Claim a sleeping or waiting execution that is due by ``due_by`` (the caller's
        clock), and record why, together, exactly once: ``"timer"`` (its timer fired),
        ``"expired"`` (a wait's deadline passed: the wait is marked expired) or
        ``"answered"`` (a wait was answered and nobody resumed it). None if it was not
        due, or someone else claimed it first."""
        with self.db.transaction():
            if not self.dispatch(exec_id, from_status=status, to_status=to_status, due_by=due_by):
                return None
            if status == Status.SLEEPING:
                self.complete_timer(exec_id)
                return "timer"
            expired = self.db.execute(
                "UPDATE waits SET status = 'expired', answered_at = :now "
                "WHERE exec_id = :id AND status = 'pending' AND expires_at <= :due_by",
                {"id": exec_id, "now": time.time(), "due_by": due_by},
            )
        return "expired" if expired else "answered"

    def merge_execution_metadata(self, exec_id: str, values: dict[str, Any]) -> None:
        """``kitaru.log`` in a flow body: user-facing metadata."""
        self._merge_json(exec_id, "metadata", values)

    def merge_execution_options(self, exec_id: str, values: dict[str, Any]) -> None:
        """Kitaru's own per-execution facts (retries, source root, last trace span)."""
        self._merge_json(exec_id, "options", values)

    def _merge_json(self, exec_id: str, column: str, values: dict[str, Any]) -> None:
        with self.db.transaction() as db:
            # Read, merge, write: two writers at once would lose one's keys without it.
            db.lock(f"executions.{column}:{exec_id}")
            row = db.fetchone(f"SELECT {column} FROM executions WHERE id = :id", {"id": exec_id})
            merged = {**json.loads(row[0]), **values} if row else dict(values)
            db.execute(
                f"UPDATE executions SET {column} = :v WHERE id = :id",
                {"id": exec_id, "v": json.dumps(merged, default=str)},
            )

    # -- the journal -----------------------------------------------------------------

    def load_journal(self, exec_id: str) -> dict[int, JournalEntry]:
        rows = self.db.fetchall(
            f"SELECT {JournalEntry.COLUMNS} FROM journal WHERE exec_id = :id ORDER BY position",
            {"id": exec_id},
        )
        return {row[1]: JournalEntry.from_row(row) for row in rows}

    def journal_extent(self, exec_id: str) -> tuple[int, int]:
        """(the highest position recorded, -1 for none; how many entries there are)."""
        row = self.db.fetchone(
            "SELECT MAX(position), COUNT(*) FROM journal WHERE exec_id = :id", {"id": exec_id}
        )
        if row is None or row[0] is None:
            return -1, 0
        return int(row[0]), int(row[1])

    def journal_page(
        self, exec_id: str, low: int, high: int
    ) -> list[tuple[JournalEntry, ArtifactRecord | None]]:
        """Entries at positions ``low <= position < high``, each with its output's record."""
        return self._journal_rows(
            "j.position >= :low AND j.position < :high ORDER BY j.position",
            {"id": exec_id, "low": low, "high": high},
        )

    def journal_at_path(
        self, exec_id: str, path: str
    ) -> tuple[JournalEntry, ArtifactRecord | None] | None:
        """The entry whose stored path is ``path`` (not one whose path is its position),
        with its output's record."""
        found = self._journal_rows("j.path = :path", {"id": exec_id, "path": path})
        return found[0] if found else None

    def _journal_rows(
        self, where: str, params: dict[str, Any]
    ) -> list[tuple[JournalEntry, ArtifactRecord | None]]:
        rows = self.db.fetchall(
            f"SELECT {_JOURNAL_COLUMNS}, {_ARTIFACT_COLUMNS} FROM journal j "
            "LEFT JOIN artifacts a ON a.id = j.output_artifact_id "
            f"WHERE j.exec_id = :id AND {where}",
            params,
        )
        width = len(JournalEntry.NAMES)
        return [
            (
                JournalEntry.from_row(row[:width]),
                ArtifactRecord.from_row(row[width:]) if row[width] is not None else None,
            )
            for row in rows
        ]

    def record_entry(
        self,
        entry: JournalEntry,
        artifacts: list[ArtifactRecord],
        *,
        replace: bool,
        llm_calls: list[LLMCallRecord] | None = None,
        owner: str | None = None,
    ) -> None:
        """Commit a journal entry with its artifact records; ``replace`` overwrites a
        failed entry at the same position. A completed entry is never overwritten.

        ``owner``: the lease the writing run holds. The entry is refused
        (``KitaruLeaseLost``) unless the execution's lease is still that one, so a run
        that lost its lease (a paused or partitioned process whose execution was taken
        over) never records beside the run that took it. The check renews the
        heartbeat and, on PostgreSQL, locks the row until the commit, so the lease
        cannot change hands between the check and the entry.

        A lost database is waited for (``RUNNER_PATIENCE``): a restart must not fail
        the run. When the connection was lost at the commit, the entry may have landed:
        the next attempt looks first, so it is never recorded twice."""
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and self._holds_entry(entry):
                return
            self._record_entry(entry, artifacts, replace, llm_calls, owner)

        self.db.patiently(attempt, patience=RUNNER_PATIENCE)

    def _holds_entry(self, entry: JournalEntry) -> bool:
        row = self.db.fetchone(
            "SELECT name, status, ended_at FROM journal WHERE exec_id = :id AND position = :p",
            {"id": entry.exec_id, "p": entry.position},
        )
        return row is not None and tuple(row) == (entry.name, entry.status, entry.ended_at)

    def _record_entry(
        self,
        entry: JournalEntry,
        artifacts: list[ArtifactRecord],
        replace: bool,
        llm_calls: list[LLMCallRecord] | None,
        owner: str | None,
    ) -> None:
        statements: list[tuple[str, dict[str, Any]]] = []
        fenced_insert = owner is not None and self.db.dialect == "sqlite"
        if owner is not None and not fenced_insert:
            statements.append((FENCE, fence_params(entry.exec_id, owner)))
        if replace:
            where = {"exec_id": entry.exec_id, "position": entry.position}
            statements.append((_DELETE_ENTRY + " AND status <> 'completed'", where))
        statements += [(ArtifactRecord.INSERT, artifact.params()) for artifact in artifacts]
        statements += [(LLMCallRecord.INSERT, call.params()) for call in llm_calls or ()]
        if fenced_insert:
            held = {"id": entry.exec_id, "owner": owner}
            statements.append((_FENCED_ENTRY, {**entry.params(), **held}))
        else:
            statements.append((JournalEntry.INSERT, entry.params()))
        fence = -1 if fenced_insert else 0  # the statement whose count says the lease holds

        def still_leased(counts: list[int]) -> None:
            if owner is not None and not counts[fence]:
                raise KitaruLeaseLost(
                    f"execution {entry.exec_id} is no longer run by this process (another "
                    f"took it over); checkpoint {entry.name!r} was not recorded"
                )

        try:
            self.db.batch(statements, check=still_leased)
        except self.db.integrity_error as exc:
            raise KitaruStateError(
                f"execution {entry.exec_id} already has a completed journal entry at "
                f"position {entry.position}; another process is running it"
            ) from exc

    def create_replay(
        self,
        record: ExecutionRecord,
        inputs: list[ArtifactRecord],
        source_id: str,
        before_position: int,
        overrides: list[tuple[JournalEntry, ArtifactRecord]],
    ) -> ExecutionRecord:
        """Create a replay execution whose journal starts as the source's completed
        entries below ``before_position``, with overridden outputs in place."""
        with self.db.transaction() as db:
            self.create_execution(record, inputs)
            db.execute(
                _COPY_JOURNAL,
                {"source": source_id, "target": record.id, "before": before_position},
            )
            for entry, artifact in overrides:
                db.execute(_DELETE_ENTRY, {"exec_id": record.id, "position": entry.position})
                db.execute(ArtifactRecord.INSERT, artifact.params())
                db.execute(JournalEntry.INSERT, entry.params())
        return record

    # -- LLM calls -------------------------------------------------------------------

    def record_llm_call(self, call: LLMCallRecord, artifacts: list[ArtifactRecord]) -> None:
        with self.db.transaction() as db:
            for artifact in artifacts:
                db.execute(ArtifactRecord.INSERT, artifact.params())
            db.execute(LLMCallRecord.INSERT, call.params())

    def llm_spend(self, exec_id: str) -> tuple[int, float]:
        """(calls, dollars) an execution's LLM calls have cost so far (its budget check)."""
        row = self.db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM llm_calls WHERE exec_id = :id",
            {"id": exec_id},
        )
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    def llm_calls(self, exec_id: str) -> list[LLMCallRecord]:
        rows = self.db.fetchall(
            f"SELECT {LLMCallRecord.COLUMNS} FROM llm_calls WHERE exec_id = :id "
            "ORDER BY created_at",
            {"id": exec_id},
        )
        return [LLMCallRecord.from_row(r) for r in rows]

    # -- artifacts -------------------------------------------------------------------

    def get_artifact(self, artifact_id: str) -> ArtifactRecord | None:
        row = self.db.fetchone(
            f"SELECT {ArtifactRecord.COLUMNS} FROM artifacts WHERE id = :id", {"id": artifact_id}
        )
        return ArtifactRecord.from_row(row) if row else None

    def code_archive_key(self, tree_digest: str) -> tuple[str, int] | None:
        """(blob key, size) of a code archive of that tree another execution recorded."""
        row = self.db.fetchone(
            "SELECT a.key, a.size FROM executions e JOIN artifacts a ON a.exec_id = e.id "
            "AND a.name = 'code' AND a.role = 'code' WHERE e.code_archive = :digest LIMIT 1",
            {"digest": tree_digest},
        )
        return (str(row[0]), int(row[1])) if row is not None else None

    def set_code(
        self, exec_id: str, version: str, archive: str | None, artifacts: list[ArtifactRecord]
    ) -> None:
        """Move an execution to other code (``--code current``, ``executions upgrade``)."""
        with self.db.transaction() as db:
            db.execute(
                "UPDATE executions SET code_version = :version, code_archive = :archive "
                "WHERE id = :id",
                {"id": exec_id, "version": version, "archive": archive},
            )
            for artifact in artifacts:
                db.execute(ArtifactRecord.INSERT, artifact.params())

    def list_artifacts(
        self, exec_id: str, *, name: str | None = None, role: str | None = None
    ) -> list[ArtifactRecord]:
        sql = f"SELECT {ArtifactRecord.COLUMNS} FROM artifacts WHERE exec_id = :exec_id"
        params: dict[str, Any] = {"exec_id": exec_id}
        if name is not None:
            sql += " AND name = :name"
            params["name"] = name
        if role is not None:
            sql += " AND role = :role"
            params["role"] = role
        sql += " ORDER BY created_at, id"
        return [ArtifactRecord.from_row(r) for r in self.db.fetchall(sql, params)]


_stores: dict[Settings, MetadataStore] = {}
_stores_lock = threading.Lock()


def _execution_filters(
    db: Database,
    flow: str | None,
    status: str | list[str] | None,
    stack: str | None,
    created_after: float | None,
    created_before: float | None,
    id_prefix: str | None,
    after: tuple[float, str] | None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (with its leading space, or empty) and parameters of a listing."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if flow:
        where.append("flow_name = :flow")
        params["flow"] = flow
    if status:
        statuses = [status] if isinstance(status, str) else status
        names = [f"status_{i}" for i in range(len(statuses))]
        where.append(f"status IN ({', '.join(':' + n for n in names)})")
        params.update(zip(names, statuses, strict=True))
    if stack:
        where.append("stack = :stack")
        params["stack"] = stack
    if created_after is not None:
        where.append("created_at >= :since")
        params["since"] = created_after
    if created_before is not None:
        where.append("created_at < :before")
        params["before"] = created_before
    if id_prefix:
        condition, matched = db.prefix_match("id", "prefix", id_prefix)
        where.append(condition)
        params.update(matched)
    if after is not None:
        where.append("(created_at < :after_at OR (created_at = :after_at AND id < :after_id))")
        params["after_at"], params["after_id"] = after
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _listing_filters(
    db: Database,
    after: tuple[float, str] | None,
    *,
    flow: str | None = None,
    status: str | None = None,
    stack: str | None = None,
    created_after: float | None = None,
    created_before: float | None = None,
    flow_contains: str | None = None,
    search: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause and parameters of the web UI's listing: ``_execution_filters``
    and its text filters. ``flow_contains``: flows whose name holds it; ``search``:
    executions whose id starts with it, or whose flow's name or a wait's question
    holds it (any case)."""
    where, params = _execution_filters(
        db, flow, status, stack, created_after, created_before, None, after
    )
    conditions = [where[len(" WHERE ") :]] if where else []

    def holding(text: str) -> str:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"

    if flow_contains:
        conditions.append("LOWER(flow_name) LIKE :flow_holds ESCAPE '\\'")
        params["flow_holds"] = holding(flow_contains)
    if search:
        by_id, matched = db.prefix_match("id", "search_id", search)
        conditions.append(
            f"({by_id} OR LOWER(flow_name) LIKE :search_text ESCAPE '\\' OR id IN (SELECT "
            "exec_id FROM waits WHERE LOWER(question) LIKE :search_text ESCAPE '\\'))"
        )
        params.update(matched, search_text=holding(search))
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def _refuse_lost_database(settings: Settings) -> None:
    """An empty or missing ``kitaru.db`` beside the artifacts and logs of earlier
    executions was truncated or deleted: starting a new store there would silently
    forget every execution and memory, so refuse and say how to go on."""
    path = settings.sqlite_path
    # Evidence that a store existed: logs are written only by executions, which need
    # one; artifacts may also be written just before a new store is first opened.
    evidence = [settings.logs_dir]
    try:
        if path.stat().st_size > 0:
            return
        state = "is empty (0 bytes)"
        evidence.append(settings.home / "artifacts")
    except FileNotFoundError:
        state = "is missing"
    except OSError:
        return  # not a directory, no permission: opening it says so
    leftovers = [d for d in evidence if d.is_dir() and any(d.iterdir())]
    if leftovers:
        raise KitaruBackendError(
            f"the metadata store {path} {state}, but {' and '.join(map(str, leftovers))} hold "
            "data of earlier executions: it was truncated or deleted, and a new store would "
            "lose track of every execution and memory. Restore it from a backup; or, to "
            f"start afresh, move {settings.home} away"
        )


def get_store(settings: Settings | None = None) -> MetadataStore:
    """The process's store for the current settings (one connection per database).

    Opened under a lock: two threads opening a new database at once would otherwise
    both run its migrations, and alembic's runtime is not thread-safe.
    """
    settings = settings or load_settings()
    store = _stores.get(settings)
    if store is None:
        with _stores_lock:
            store = _stores.get(settings)
            if store is None:
                store = _stores[settings] = _open(settings)
    if store.unsigned_references and AFTER_UPGRADE:  # once, by the process that upgraded
        store.unsigned_references = False
        for hook in AFTER_UPGRADE:
            hook(store)
    return store


def _open(settings: Settings) -> MetadataStore:
    if settings.server_url is None:
        return MetadataStore.open(settings)
    # It answers every call of MetadataStore that the runtime makes (``wire.CALLS``).
    return cast(MetadataStore, HttpMetadataStore(settings.server_url, settings.token))


AFTER_UPGRADE: list[Callable[[MetadataStore], object]] = []
"""What must run once in the process that upgraded a store across a revision that
changed the meaning of its rows (``runtime/trust.py`` signs flow references). A layer
above the store registers itself here, so the store imports nothing above it."""


def reset_store_cache() -> None:
    """Close and forget open stores (tests change KITARU_HOME between cases)."""
    with _stores_lock:
        for store in _stores.values():
            store.db.close()
        _stores.clear()
