"""What each run printed, kept in the store: a runner in a pod or a detached process
has a disk that goes with it, so its stdout and stderr are shipped here as it runs, and
``kitaru executions logs`` shows them after the pod is gone.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_output",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("exec_id", sa.String(128), nullable=False),
        sa.Column("run", sa.Integer, nullable=False, comment="1 for the first run"),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False, comment="stdout and stderr, as printed"),
        comment="what runs printed, in chunks shipped about once a second",
    )
    op.create_index("ix_run_output_exec", "run_output", ["exec_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_run_output_exec", "run_output")
    op.drop_table("run_output")
