"""What a death counts against: the process an execution last died in, how many
executions that process was running when it died, and the step it had reached.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column(
                "died_in",
                sa.String(255),
                nullable=True,
                comment="the process (host:pid:start) that last died while running it",
            )
        )
        batch.add_column(
            sa.Column(
                "died_with",
                sa.Integer,
                nullable=True,
                comment="how many executions that process was running when it died",
            )
        )
        batch.add_column(
            sa.Column(
                "death_step",
                sa.Integer,
                nullable=True,
                comment="completed steps at its last death that counted against it",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("death_step")
        batch.drop_column("died_with")
        batch.drop_column("died_in")
