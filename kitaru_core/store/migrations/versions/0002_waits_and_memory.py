"""Waits for human or agent input, and versioned memory.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waits",
        sa.Column("exec_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="pending, answered, aborted"),
        sa.Column("question", sa.Text, nullable=True),
        sa.Column("schema", sa.Text, nullable=False, comment="JSON schema of the expected value"),
        sa.Column("schema_name", sa.String(255), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
        sa.Column("value_artifact_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("answered_at", sa.Float, nullable=True),
    )
    op.create_index("ix_waits_status", "waits", ["status"])
    op.create_table(
        "memory",
        sa.Column("scope_type", sa.String(16), primary_key=True),
        sa.Column("scope", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("artifact_id", sa.String(64), nullable=True, comment="NULL for a tombstone"),
        sa.Column("exec_id", sa.String(64), nullable=True, comment="the execution that wrote it"),
        sa.Column("stack", sa.String(255), nullable=False, comment="whose artifact store holds it"),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("memory")
    op.drop_table("waits")
