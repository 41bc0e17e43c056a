"""What a runner's death counts against.

When the process running an execution dies, the worker recovers the execution. Whether
that death counts towards the stack's ``max_recoveries`` follows one rule:

- A process that dies while it runs several executions (a worker's threads) died of
  something none of them can be blamed for alone: an outside kill, a lost host, an
  out-of-memory kill of the whole worker. It counts against none of them.
- A process that dies running one execution counts against it, but only while the
  execution makes no progress: deaths count when they happen at the same step again
  and again (the poison case, where retrying can never help). A death after a newly
  recorded step starts the count again at one, and so does a run that ends.

A run that never took its lease (its claimer died first) is not the execution's doing
either: it is recovered without counting.

Who shared the process is stamped on every execution it was running the first time
any of them is recovered, in one statement, so the answer does not depend on which
worker recovers which execution first, or when.
"""

from __future__ import annotations

from dataclasses import dataclass

from kitaru_core.store.database import Database


def process_of(owner: str) -> str:
    """The process part of a lease owner (``host:pid:start``, without the run's nonce)."""
    return owner.rsplit(":", 1)[0]


@dataclass(frozen=True)
class Death:
    process: str
    shared_with: int
    """How many other executions the process was running when it died."""
    step: int
    """Completed steps of the execution when it died."""
    count: int
    """Consecutive deaths without progress that count against it, this one included
    (0 when this one does not count)."""


class DeathStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, exec_id: str, owner: str) -> Death:
        """Stamp the dead ``owner``'s process on every execution it was running (once),
        and say what the death of ``exec_id``'s runner counts."""
        process = process_of(owner)
        held = "status = 'running' AND substr(lease_owner, 1, :n) = :prefix"
        params = {"process": process, "prefix": process + ":", "n": len(process) + 1}
        with self.db.transaction() as db:
            db.execute(
                "UPDATE executions SET died_in = :process, "
                f"died_with = (SELECT COUNT(*) FROM executions WHERE {held}) "
                f"WHERE {held} AND (died_in IS NULL OR died_in <> :process)",
                params,
            )
            row = db.fetchone(
                "SELECT died_in, died_with, recoveries, death_step, (SELECT COUNT(*) FROM "
                "journal WHERE exec_id = :id AND status = 'completed') "
                "FROM executions WHERE id = :id",
                {"id": exec_id},
            )
        assert row is not None
        died_in, died_with, recoveries, death_step, step = row
        shared_with = (died_with or 1) - 1 if died_in == process else 0
        if shared_with:
            count = 0
        elif death_step is None or step > death_step:
            count = 1
        else:
            count = recoveries + 1
        return Death(process, shared_with, step, count)
