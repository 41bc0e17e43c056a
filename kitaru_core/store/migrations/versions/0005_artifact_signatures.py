"""Signatures on artifacts whose loading runs code (pickle, typed models).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: added in place (no table copy, even on SQLite).
    op.add_column(
        "artifacts",
        sa.Column(
            "signature",
            sa.String(64),
            nullable=True,
            comment="HMAC-SHA256 of a value whose loading runs code (pickle, typed models)",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("signature")
