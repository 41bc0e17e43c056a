"""The metadata store: migrations, durability settings, and damaged artifacts."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.errors import KitaruBackendError, KitaruUsageError
from kitaru_core.settings import load_settings
from kitaru_core.store import migrations
from kitaru_core.store.metadata_store import get_store, reset_store_cache


@checkpoint
def produce(n: int) -> list[int]:
    return list(range(n))


@flow
def producer(n: int) -> int:
    return len(produce(n))


def test_a_new_database_is_migrated_to_head() -> None:
    store = get_store()
    assert migrations.current_revision(store.db) == migrations.HEAD


def test_the_schema_module_matches_the_migrations() -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from kitaru_core.store.database import sqlalchemy_url
    from kitaru_core.store.schema import metadata

    store = get_store()
    engine = create_engine(sqlalchemy_url(store.db.url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_a_database_from_a_newer_kitaru_is_refused() -> None:
    store = get_store()
    store.db.execute("UPDATE alembic_version SET version_num = '9999'")
    reset_store_cache()
    with pytest.raises(KitaruBackendError, match="newer than this Kitaru knows"):
        get_store()


def test_sqlite_runs_in_wal_mode_with_the_chosen_durability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if load_settings().database_url:
        pytest.skip("SQLite pragmas")
    store = get_store()
    assert store.db.fetchone("PRAGMA journal_mode") == ("wal",)
    assert store.db.fetchone("PRAGMA synchronous") == (1,)  # NORMAL
    monkeypatch.setenv("KITARU_DURABILITY", "full")
    reset_store_cache()
    assert get_store().db.fetchone("PRAGMA synchronous") == (2,)  # FULL
    assert producer.run(3).wait() == 3


def test_an_unknown_durability_level_says_which_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITARU_DURABILITY", "paranoid")
    with pytest.raises(KitaruUsageError, match=r"'normal'.*'full'"):
        load_settings()


@pytest.fixture
def no_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every artifact goes to the artifact store, as a file."""
    monkeypatch.setenv("KITARU_INLINE_ARTIFACT_BYTES", "0")


def test_small_outputs_live_in_the_metadata_store_and_large_ones_in_the_artifact_store() -> None:
    small = producer.run(3).exec_id
    large = producer.run(5000).exec_id
    [small_ref] = KitaruClient().artifacts.list(small, name="produce")
    [large_ref] = KitaruClient().artifacts.list(large, name="produce")
    assert small_ref.uri.startswith("kitaru-inline:")
    assert large_ref.uri.startswith("file://") and large_ref.size > 4096
    assert Path(large_ref.uri.removeprefix("file://")).read_bytes().startswith(b"[0,1,2,")
    assert (small_ref.load(), len(large_ref.load())) == ([0, 1, 2], 5000)


@flow
def three_steps() -> int:
    return sum(len(produce(n)) for n in (1, 2, 3))


def test_artifact_ids_follow_the_order_they_were_made_and_execution_ids_stay_random() -> None:
    # An artifact's id starts with the time it was made (a UUIDv7), so a step's new row
    # lands beside the last in the index; an execution's id is random, so a few of its
    # first characters name it in the CLI.
    first, second = (three_steps.run().exec_id for _ in range(2))
    assert uuid.UUID(first).version == uuid.UUID(second).version == 4
    assert first[:6] != second[:6]
    refs = [ref for e in (first, second) for ref in KitaruClient().artifacts.list(e)]
    assert len({ref.id for ref in refs}) == len(refs) >= 8
    assert all(uuid.UUID(ref.id).version == 7 for ref in refs)
    in_order_made = [ref.id for ref in sorted(refs, key=lambda ref: ref.created_at)]
    assert [i[:12] for i in in_order_made] == sorted(i[:12] for i in in_order_made)


def test_corrupted_inline_bytes_are_an_error_too() -> None:
    exec_id = producer.run(3).exec_id
    [ref] = KitaruClient().artifacts.list(exec_id, name="produce")
    get_store().db.execute(
        "UPDATE artifacts SET inline = :b WHERE id = :id", {"b": b"[9,9,9]", "id": ref.id}
    )
    with pytest.raises(KitaruBackendError, match="corrupted: the bytes in the metadata store"):
        KitaruClient().artifacts.get(ref.id).load()


def _output_blob(exec_id: str) -> Path:
    [ref] = KitaruClient().artifacts.list(exec_id, name="produce")
    return Path(ref.uri.removeprefix("file://"))


@pytest.mark.usefixtures("no_inline")
def test_a_corrupted_blob_is_an_error_naming_the_artifact_and_its_place() -> None:
    exec_id = producer.run(3).exec_id
    blob = _output_blob(exec_id)
    blob.write_bytes(b"[9, 9, 9]")
    [ref] = KitaruClient().artifacts.list(exec_id, name="produce")
    with pytest.raises(KitaruBackendError, match="corrupted") as info:
        ref.load()
    assert "'produce'" in str(info.value) and str(blob) in str(info.value)


@pytest.mark.usefixtures("no_inline")
def test_a_missing_blob_fails_the_resume_clearly_and_changes_nothing() -> None:
    exec_id = producer.run(3).exec_id
    store = get_store()
    store.db.execute("UPDATE executions SET status = 'running' WHERE id = :id", {"id": exec_id})
    os.unlink(_output_blob(exec_id))
    handle = KitaruClient().executions.resume(exec_id)
    execution = KitaruClient().executions.get(exec_id)
    assert handle.status == "failed"
    assert execution.error is not None
    assert "missing from the local artifact store" in execution.error["message"]
    assert [c.status for c in execution.checkpoints] == ["completed"]


def test_an_unwritable_home_is_a_backend_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if load_settings().database_url:
        pytest.skip("SQLite location")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("KITARU_HOME", str(blocker / "home"))
    reset_store_cache()
    with pytest.raises(KitaruBackendError, match="KITARU_HOME"):
        get_store()


def test_an_unreachable_postgres_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv("KITARU_DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/none")
    reset_store_cache()
    with pytest.raises(KitaruBackendError, match="KITARU_DATABASE_URL") as info:
        get_store()
    assert "secret" not in str(info.value)


@pytest.mark.skipif(bool(load_settings().database_url), reason="the SQLite migrations")
def test_migrations_that_fail_midway_leave_no_table_behind(tmp_path: Path) -> None:
    """The migrations commit together or not at all: a process that dies after some of
    the DDL ran (here: an error right after one table is created) leaves no table
    without the version that made it, so the next process can migrate."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from kitaru_core.store.migrations import upgrade

    path = tmp_path / "kitaru.db"

    def die_after_llm_calls(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().startswith("CREATE TABLE llm_calls"):
            raise RuntimeError("the process dies here")

    event.listen(Engine, "after_cursor_execute", die_after_llm_calls)
    try:
        with pytest.raises(RuntimeError, match="dies here"):
            upgrade(f"sqlite:///{path}")
    finally:
        event.remove(Engine, "after_cursor_execute", die_after_llm_calls)
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == set()
    upgrade(f"sqlite:///{path}")  # and the next attempt migrates from scratch
