"""What ``kitaru serve`` needs: API tokens (only their hashes) and the event log its
event stream reads.

Events are written by triggers in the same transaction as the change they record, so
every status change, new wait and ended step is in the log whichever process made it
(a flow, a worker, the CLI), in commit order on SQLite and in id order on PostgreSQL.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = "at, exec_id, kind, name, status, position"

# (trigger, table, timing, condition, values) for both dialects.
_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_SQLITE_TRIGGERS = {
    "kitaru_event_execution_created": (
        "AFTER INSERT ON executions",
        None,
        f"{_SQLITE_NOW}, NEW.id, 'status', NULL, NEW.status, NULL",
    ),
    "kitaru_event_execution_status": (
        "AFTER UPDATE OF status ON executions",
        "NEW.status IS NOT OLD.status",
        f"{_SQLITE_NOW}, NEW.id, 'status', NULL, NEW.status, NULL",
    ),
    "kitaru_event_wait_created": (
        "AFTER INSERT ON waits",
        None,
        f"{_SQLITE_NOW}, NEW.exec_id, 'wait', NEW.name, NEW.status, NEW.position",
    ),
    "kitaru_event_step_recorded": (
        "AFTER INSERT ON journal",
        "NEW.status IN ('completed', 'failed')",
        f"{_SQLITE_NOW}, NEW.exec_id, 'step', NEW.name, NEW.status, NEW.position",
    ),
    "kitaru_event_step_ended": (
        "AFTER UPDATE ON journal",
        "NEW.status IN ('completed', 'failed') "
        "AND (NEW.ended_at IS NOT OLD.ended_at OR NEW.status IS NOT OLD.status)",
        f"{_SQLITE_NOW}, NEW.exec_id, 'step', NEW.name, NEW.status, NEW.position",
    ),
}

_PG_FUNCTIONS = {
    "kitaru_event_execution": """
        IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
            INSERT INTO events (at, exec_id, kind, status)
            VALUES (extract(epoch from clock_timestamp()), NEW.id, 'status', NEW.status);
        END IF;""",
    "kitaru_event_wait": """
        INSERT INTO events (at, exec_id, kind, name, status, position)
        VALUES (extract(epoch from clock_timestamp()), NEW.exec_id, 'wait', NEW.name,
                NEW.status, NEW.position);""",
    "kitaru_event_step": """
        IF NEW.status IN ('completed', 'failed') AND (TG_OP = 'INSERT'
                OR NEW.ended_at IS DISTINCT FROM OLD.ended_at
                OR NEW.status IS DISTINCT FROM OLD.status) THEN
            INSERT INTO events (at, exec_id, kind, name, status, position)
            VALUES (extract(epoch from clock_timestamp()), NEW.exec_id, 'step', NEW.name,
                    NEW.status, NEW.position);
        END IF;""",
}
_PG_TRIGGERS = {
    "kitaru_event_execution": "AFTER INSERT OR UPDATE OF status ON executions",
    "kitaru_event_wait": "AFTER INSERT ON waits",
    "kitaru_event_step": "AFTER INSERT OR UPDATE ON journal",
}


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True, comment="the token's public part"),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("scope", sa.String(16), nullable=False, comment="read, input, run or admin"),
        sa.Column("secret_hash", sa.String(64), nullable=False, comment="SHA-256 of the secret"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("last_used_at", sa.Float, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("exec_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, comment="status, wait or step"),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("position", sa.Integer, nullable=True),
        # AUTOINCREMENT: an id is never reused after its event is deleted, so a client's
        # Last-Event-ID never points at a newer event.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_exec", "events", ["exec_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f"{body}\n        RETURN NULL;\n    END $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} {_PG_TRIGGERS[name]} FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
    else:
        for name, (when, condition, values) in _SQLITE_TRIGGERS.items():
            where = f" WHEN {condition}" if condition else ""
            op.execute(
                f"CREATE TRIGGER {name} {when} FOR EACH ROW{where} BEGIN "
                f"INSERT INTO events ({_COLUMNS}) VALUES ({values}); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, on in _PG_TRIGGERS.items():
            table = on.rsplit(" ", 1)[-1]
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_events_exec", "events")
    op.drop_table("events")
    op.drop_table("api_tokens")
