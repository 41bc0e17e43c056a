"""The store's identity: one random id, made when the store is, that names this
metadata store wherever it is reached from (a laptop through a port-forward and a
worker in the cluster see the same id). What Kitaru makes outside the store (a
Kubernetes Job) carries it, so two installations sharing a namespace never take each
other's for their own.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "store_identity",
        sa.Column("id", sa.String(32), primary_key=True, comment="random, made once"),
        comment="one row: this metadata store's id",
    )
    op.bulk_insert(table, [{"id": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("store_identity")
