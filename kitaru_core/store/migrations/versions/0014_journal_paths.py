"""Each journal entry's path in the flow body's tree of tasks (``runtime/scopes.py``), by
which a resumed run finds the steps of concurrent tasks whatever order they arrive in.

The column is empty (NULL) when the path is the entry's position, as it is for every
step of a flow body that creates no tasks, and for every entry recorded before this
revision; those executions keep being matched by position (their runs do not give tasks
scopes, see ``ExecutionContext.task_paths``). The unique index covers only the entries
that have a path, so recording a step of a plain flow body pays nothing for it.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "journal",
        sa.Column(
            "path",
            sa.Text,
            nullable=True,
            comment="the step's path in the tree of tasks; NULL: its position",
        ),
    )
    op.create_index(
        "ix_journal_path",
        "journal",
        ["exec_id", "path"],
        unique=True,
        sqlite_where=sa.text("path IS NOT NULL"),
        postgresql_where=sa.text("path IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_journal_path", "journal")
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("path")
