"""Child flows: an execution started in another's flow body records its parent and the
parent's journal position.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column(
                "parent_exec_id",
                sa.String(128),
                nullable=True,
                comment="the execution whose flow body started this one",
            )
        )
        batch.add_column(
            sa.Column(
                "parent_position",
                sa.Integer,
                nullable=True,
                comment="the parent's journal position of the call",
            )
        )
        batch.create_index("ix_executions_parent", ["parent_exec_id"])


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_parent")
        batch.drop_column("parent_position")
        batch.drop_column("parent_exec_id")
