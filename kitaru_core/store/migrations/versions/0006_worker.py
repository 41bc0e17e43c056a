"""What the worker needs: timers, wait deadlines, queues, recovery counts, schedules and
the workers themselves; execution ids chosen by callers, up to 128 characters.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Every column that holds an execution id: callers may now choose ids up to 128 chars
# (schedule firings are NAME@TIME).
_EXEC_ID_COLUMNS = {
    "executions": ("id", "original_exec_id"),
    "journal": ("exec_id",),
    "artifacts": ("exec_id",),
    "waits": ("exec_id",),
    "memory": ("exec_id",),
    "llm_calls": ("exec_id",),
}


def upgrade() -> None:
    for table, columns in _EXEC_ID_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, type_=sa.String(128), existing_type=sa.String(64))
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column(
                "wake_at",
                sa.Float,
                nullable=True,
                comment="when a sleeping execution's timer or a waiting one's deadline is due",
            )
        )
        batch.add_column(
            sa.Column(
                "queue",
                sa.String(255),
                nullable=True,
                comment="the flow's queue when it limits concurrency or runs one per key",
            )
        )
        batch.add_column(
            sa.Column("queue_key", sa.Text, nullable=True, comment="the key argument's value")
        )
        batch.add_column(
            sa.Column(
                "recoveries",
                sa.Integer,
                nullable=False,
                server_default="0",
                comment="times a worker resumed it after its process died",
            )
        )
        batch.create_index("ix_executions_queue", ["queue", "status"])
        batch.create_index("ix_executions_wake", ["status", "wake_at"])
    with op.batch_alter_table("waits") as batch:
        batch.add_column(
            sa.Column(
                "expires_at",
                sa.Float,
                nullable=True,
                comment="after this, the wait resolves to its default or fails",
            )
        )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("flow_ref", sa.Text, nullable=False),
        sa.Column("flow_name", sa.String(255), nullable=False),
        sa.Column("args", sa.Text, nullable=False, server_default="{}", comment="JSON"),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("catchup", sa.String(16), nullable=False, comment="skip, latest or all"),
        sa.Column("stack", sa.String(255), nullable=False),
        sa.Column("paused", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "next_at",
            sa.Float,
            nullable=False,
            comment="the earliest slot not yet fired (epoch seconds)",
        ),
        sa.Column("last_exec_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("stack", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("counts", sa.Text, nullable=False, server_default="{}", comment="JSON"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("schedules")
    with op.batch_alter_table("waits") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_wake")
        batch.drop_index("ix_executions_queue")
        for column in ("recoveries", "queue_key", "queue", "wake_at"):
            batch.drop_column(column)
