"""Alembic's entry point for Kitaru's metadata schema (run programmatically)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from kitaru_core.store.schema import metadata

config = context.config
url = str(config.attributes.get("url") or config.get_main_option("sqlalchemy.url"))
engine = create_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # Two processes starting on an empty database must not both create the tables.
        connection.execute(
            text("SELECT pg_advisory_lock(:id)"), {"id": config.attributes["advisory_lock_id"]}
        )
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_unlock(:id)"), {"id": config.attributes["advisory_lock_id"]}
        )
        connection.commit()
engine.dispose()
