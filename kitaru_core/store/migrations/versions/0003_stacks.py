"""Registered stacks, shared by everyone who shares the metadata store.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stacks",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column(
            "definition",
            sa.Text,
            nullable=False,
            comment="the stack file as JSON, secrets unresolved",
        ),
        sa.Column("source", sa.Text, nullable=True, comment="the file it was registered from"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stacks")
