"""Signed flow references: from here on every execution's options carry a signature of
its flow reference (``kitaru_core/runtime/trust.py``). There is no schema change; the
process that upgrades a store across this revision signs its existing executions with
its deployment's key once the upgrade is done (``get_store``).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
