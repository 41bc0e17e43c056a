"""The lease as a write checks it: only the process that holds an execution's lease may
record for it, and the check must hold until the write commits.

PostgreSQL: ``FENCE`` refreshes the heartbeat under the row lock it takes, so a
takeover waits for this transaction. SQLite: ``BEGIN IMMEDIATE`` already keeps every
other writer out until the commit, so a read of the owner is enough (and writes no page
of the execution's row)."""

from __future__ import annotations

import time

from kitaru_core.store.database import Database

FENCE = "UPDATE executions SET lease_heartbeat = :now WHERE id = :id AND lease_owner = :owner"
HOLDS = "SELECT 1 FROM executions WHERE id = :id AND lease_owner = :owner"


def fence_params(exec_id: str, owner: str) -> dict[str, object]:
    return {"id": exec_id, "owner": owner, "now": time.time()}


def still_held(db: Database, exec_id: str, owner: str) -> bool:
    """Inside a transaction: whether ``owner`` holds the lease, held so until it commits."""
    params = fence_params(exec_id, owner)
    if db.dialect == "sqlite":
        return db.fetchone(HOLDS, params) is not None
    return db.execute(FENCE, params) == 1
