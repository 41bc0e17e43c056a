"""PostgreSQL tells listening workers about work at once: a trigger on executions sends
``NOTIFY kitaru_work`` (the payload is the stack) when a process takes a running
execution's lease, when an execution is queued, when one of a queue ends (a place is
free), and when a waiting or sleeping one becomes due now (an answered wait). Workers
``LISTEN`` and act within milliseconds instead of at their next poll. SQLite has no
notifications; its workers watch the database's files instead.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION kitaru_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('kitaru_work', NEW.stack);
            RETURN NULL;
        END $$
        """
    )
    # Idempotent: a store stamped back to an older revision runs this again.
    op.execute("DROP TRIGGER IF EXISTS executions_notify_work ON executions")
    op.execute(
        """
        CREATE TRIGGER executions_notify_work
        AFTER INSERT OR UPDATE OF status, lease_owner, wake_at ON executions
        FOR EACH ROW WHEN (
            NEW.status = 'queued'
            OR (NEW.status = 'running' AND NEW.lease_owner IS NOT NULL)
            OR (NEW.queue IS NOT NULL AND NEW.status IN ('completed', 'failed', 'cancelled'))
            OR (NEW.status IN ('waiting', 'sleeping')
                AND NEW.wake_at <= extract(epoch FROM clock_timestamp()))
        )
        EXECUTE FUNCTION kitaru_notify_work()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS executions_notify_work ON executions")
    op.execute("DROP FUNCTION IF EXISTS kitaru_notify_work()")
