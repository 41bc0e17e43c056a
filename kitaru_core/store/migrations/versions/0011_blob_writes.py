"""Blobs written lately: a writer notes a blob's key before it puts (or reuses) it, and
retention leaves a noted blob alone, so a row committed after retention looked never
points at deleted bytes.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_writes",
        sa.Column("key", sa.String(64), primary_key=True, comment="content key of the blob"),
        sa.Column(
            "written_at",
            sa.Float,
            nullable=False,
            comment="when a writer last put or reused it",
        ),
        comment="blobs written lately, whose rows may not be committed yet: retention keeps them",
    )


def downgrade() -> None:
    op.drop_table("blob_writes")
