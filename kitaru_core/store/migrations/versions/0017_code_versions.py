"""Which code each execution runs: its code version (``@flow(version=...)``,
``KITARU_CODE_VERSION`` or a digest of the flow's source), and, with ``code: archive``,
the digest of the source archive it started with, which its runs import wherever they run.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as table:
        table.add_column(
            sa.Column("code_version", sa.String(128), comment="null: recorded before 0017")
        )
        table.add_column(
            sa.Column("code_archive", sa.String(64), comment="sha256 of its source archive")
        )
    op.create_index("ix_executions_code_version", "executions", ["code_version", "status"])
    op.create_index("ix_executions_code_archive", "executions", ["code_archive"])


def downgrade() -> None:
    op.drop_index("ix_executions_code_archive", "executions")
    op.drop_index("ix_executions_code_version", "executions")
    with op.batch_alter_table("executions") as table:
        table.drop_column("code_archive")
        table.drop_column("code_version")
