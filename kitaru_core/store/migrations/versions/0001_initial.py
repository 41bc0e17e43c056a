"""Executions, their journal and artifact records.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("flow_name", sa.String(255), nullable=False),
        sa.Column(
            "flow_ref",
            sa.Text,
            nullable=False,
            comment="module:qualname or path/to/script.py:qualname",
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stack", sa.String(255), nullable=False),
        sa.Column("original_exec_id", sa.String(64), nullable=True),
        sa.Column("result_artifact_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True, comment="JSON: type, message, traceback"),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
        sa.Column("options", sa.Text, nullable=False, server_default="{}"),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_heartbeat", sa.Float, nullable=True),
        sa.Column("runs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_index("ix_executions_status", "executions", ["status"])
    op.create_index("ix_executions_flow_created", "executions", ["flow_name", "created_at"])
    op.create_index("ix_executions_created", "executions", ["created_at"])
    op.create_table(
        "journal",
        sa.Column("exec_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="checkpoint"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("output_artifact_id", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=False),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("exec_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, comment="input, output, saved or result"),
        sa.Column("artifact_type", sa.String(64), nullable=False, server_default="output"),
        sa.Column("position", sa.Integer, nullable=True),
        sa.Column(
            "key", sa.String(128), nullable=False, comment="content hash in the artifact store"
        ),
        sa.Column("serializer", sa.String(16), nullable=False),
        sa.Column("type_ref", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column(
            "inline",
            sa.LargeBinary,
            nullable=True,
            comment="the bytes of a small artifact; larger ones live in the artifact store",
        ),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_artifacts_exec_name", "artifacts", ["exec_id", "name"])


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_table("journal")
    op.drop_table("executions")
