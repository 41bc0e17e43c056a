"""Alembic's entry point for Kitaru's metadata schema (run programmatically)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, event, pool, text

from kitaru_core.store.schema import metadata

config = context.config
url = str(config.attributes.get("url") or config.get_main_option("sqlalchemy.url"))
engine = create_engine(url, poolclass=pool.NullPool)

if engine.dialect.name == "sqlite":
    # pysqlite commits before every DDL statement by itself, so a process killed in the
    # middle of the migrations would leave tables without the version that made them.
    # Let SQLAlchemy begin the transaction instead: all the migrations then commit
    # together or not at all (SQLAlchemy's documented recipe for pysqlite).
    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
        transactional_ddl=True,  # alembic assumes SQLite has none; with the recipe it has
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_unlock(:id)"), {"id": config.attributes["advisory_lock_id"]}
        )
        connection.commit()
engine.dispose()
