"""Every LLM call through the gateway: model, tokens, latency, cost, error.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("exec_id", sa.String(64), nullable=True),
        sa.Column(
            "position", sa.Integer, nullable=True, comment="journal position of its checkpoint"
        ),
        sa.Column("checkpoint", sa.String(255), nullable=True),
        sa.Column("alias", sa.String(255), nullable=True),
        sa.Column(
            "model", sa.String(255), nullable=False, comment="the provider model it resolved to"
        ),
        sa.Column("prompt_artifact_id", sa.String(64), nullable=True),
        sa.Column("response_artifact_id", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
        sa.Column("latency", sa.Float, nullable=False, comment="seconds"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_llm_calls_exec", "llm_calls", ["exec_id"])


def downgrade() -> None:
    op.drop_table("llm_calls")
