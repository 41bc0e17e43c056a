"""Who started each execution: the name of the API token whose request recorded it, when
it was recorded through ``kitaru serve``; null when a process with the database's own
credentials recorded it.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as table:
        table.add_column(
            sa.Column("started_by", sa.String(128), comment="token name; null: direct")
        )


def downgrade() -> None:
    with op.batch_alter_table("executions") as table:
        table.drop_column("started_by")
