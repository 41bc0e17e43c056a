"""The faults a team meets in its first week: connections the database drops, a lease
renewal that fails, a lease another process took, a body that gives up early, a write
lock another process holds. Real processes and a real database wherever the fault is
the database's."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

import kitaru
from conftest import PG_URL
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.errors import KitaruDatabaseUnavailable, KitaruNotFoundError
from kitaru_core.runtime import lease
from kitaru_core.store.metadata_store import get_store
from kitaru_server import FAULT_FLOWS, start_server

API = "/api/v1"
pg_only = pytest.mark.skipif(not PG_URL, reason="drops PostgreSQL connections")


def drop_connections(name: str | None) -> int:
    """``pg_terminate_backend`` on every connection under ``name`` (a test's schema: its
    own store's, or its server's and workers'): what a restart or a failover does."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        ).fetchall()
    return len(rows)


def get_retrying(client: httpx.Client, path: str) -> dict[str, Any]:
    """A read that may meet the 503 of a database coming back."""
    for _ in range(100):
        response = client.get(path)
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            return dict(response.json())
        time.sleep(0.1)
    raise AssertionError(f"{path} kept answering 503")


@pg_only
def test_server_and_worker_ride_out_dropped_connections_and_run_each_step_once(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks.txt"
    served = start_server(tmp_path, FAULT_FLOWS)
    worker = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "worker"],
        env=served.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        names = [f"drop-{i}" for i in range(6)]
        with served.client("run") as runner:
            for name in names:
                started = runner.post(
                    f"{API}/flows/marked/executions",
                    json={"args": {"marks": str(marks), "name": name, "steps": 6}},
                    headers={"Idempotency-Key": name},
                )
                assert started.status_code == 201, started.text
            dropped = 0
            for _ in range(6):  # while the executions run
                time.sleep(0.15)
                dropped += drop_connections(served.schema)
            assert dropped >= 6  # the server's and the worker's, several times over
            deadline = time.monotonic() + 90
            for name in names:
                while (found := get_retrying(runner, f"{API}/executions/{name}"))[
                    "status"
                ] != "completed":
                    assert found["status"] in ("running", "queued"), (
                        found["status"],
                        found.get("error"),
                    )
                    assert time.monotonic() < deadline, found
                    time.sleep(0.1)
            # No restart by hand: the same server starts and finishes new work.
            drop_connections(served.schema)
            again = runner.post(
                f"{API}/flows/marked/executions?wait=30",
                json={"args": {"marks": str(marks), "name": "after", "steps": 1}},
            )
            assert again.status_code == 201, again.text
            assert again.json()["status"] == "completed"
        counts = Counter(marks.read_text().split())
        expected = {f"{name}:{i}" for name in names for i in range(6)} | {"after:0"}
        assert set(counts) == expected
        assert [label for label, n in counts.items() if n > 1] == []  # none ran twice
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        served.stop()


@pg_only
def test_a_read_after_the_connection_was_dropped_reconnects() -> None:
    store = get_store()
    store.db.execute("SELECT 1")
    schema = os.environ["KITARU_DATABASE_URL"].rsplit("application_name=", 1)[1]
    assert drop_connections(schema) >= 1  # the store's own connections, no other test's
    assert store.list_executions() == []  # on a fresh connection, without a restart


def test_a_renewal_that_fails_is_tried_again_and_renewing_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handle = _start_waiting()
    store = get_store()
    owner = lease.claim(store, handle)
    real = store.renew_lease
    outcomes: list[str] = []

    def flaky(exec_id: str, who: str) -> str | None:
        if not outcomes:
            outcomes.append("failed")
            raise KitaruDatabaseUnavailable("the database is restarting")
        outcomes.append("renewed")
        return real(exec_id, who)

    monkeypatch.setattr(lease, "HEARTBEAT_INTERVAL", 0.05)
    monkeypatch.setattr(store, "renew_lease", flaky)
    heartbeat = lease.Heartbeat(store, handle, owner)
    heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while outcomes.count("renewed") < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        heartbeat.stop()
    assert outcomes[0] == "failed" and outcomes.count("renewed") >= 3
    assert not heartbeat.lost.is_set() and heartbeat.failures == 0


@checkpoint
def taken_over_inside() -> str:
    """While it runs, another process takes the execution over (the test forges the
    takeover in the row, as a worker that judged this runner dead would)."""
    store = get_store()
    for record in store.list_executions(flow="zombie", status="running"):
        store.db.execute(
            "UPDATE executions SET lease_owner = 'elsewhere:1:1:x' WHERE id = :id",
            {"id": record.id},
        )
    return "too late"


@flow
def zombie() -> str:
    return taken_over_inside()


def test_a_run_that_lost_its_lease_records_nothing() -> None:
    handle = zombie.run()
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.checkpoints == []  # the entry was refused, not recorded
    # ... and with it the output it would have recorded: all of it or nothing
    client = KitaruClient()
    assert [a.name for a in client.artifacts.list(handle.exec_id) if a.role == "output"] == []
    assert execution.status == "running"  # left for the process that took it over
    assert "no longer run by this process" in KitaruClient().executions.logs(handle.exec_id)


slow_started = threading.Event()


@checkpoint
def slow_to_finish() -> str:
    slow_started.set()
    time.sleep(0.5)
    return "late"


@checkpoint
def never_started() -> str:
    return "should not run"


@flow
def gives_up() -> str:
    slow_to_finish.submit()
    slow_started.wait(5)
    never_started.submit()  # may queue behind nothing; cancelled if it has not begun
    raise ValueError("gave up")


def test_a_body_that_gives_up_leaves_nothing_recorded_after_its_end() -> None:
    handle = gives_up.run()
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "failed"
    time.sleep(1.0)  # a checkpoint left running would have recorded by now
    after = KitaruClient().executions.get(handle.exec_id)
    assert after.ended_at is not None
    assert all(c.ended_at <= after.ended_at for c in after.checkpoints)
    assert [c.name for c in after.checkpoints].count("slow_to_finish") == 1


@flow
def pauses() -> str:
    return str(kitaru.wait(schema=str, name="go", question="Go on?"))


def _start_waiting() -> str:
    handle = pauses.run()
    assert handle.status == "waiting"
    return handle.exec_id


def test_cancelling_ends_the_pending_waits() -> None:
    exec_id = _start_waiting()
    client = KitaruClient()
    assert [w.name for w in client.executions.pending_waits(exec_id)] == ["go"]
    client.executions.cancel(exec_id)
    assert client.executions.pending_waits(exec_id) == []
    assert client.executions.pending_waits() == []


def test_id_and_key_prefixes_match_case_sensitively_on_both_databases() -> None:
    client = KitaruClient()
    upper = pauses.run(exec_id="Nightly-Report")
    assert client.executions.get("Nightly").exec_id == upper.exec_id
    with pytest.raises(KitaruNotFoundError):
        client.executions.get("nightly")
    client.memories.set("Plan_A", 1, scope="s")
    client.memories.set("plan_b", 2, scope="s")
    client.memories.set("planXc", 3, scope="s")

    def keys(prefix: str) -> set[str]:
        return {m.key for m in client.memories.list(prefix, scope="s")}

    assert keys("plan") == {"planXc", "plan_b"}
    assert keys("plan_") == {"plan_b"}  # "_" is a character here, not LIKE's wildcard
    assert keys("Plan") == {"Plan_A"}


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's write lock")
def test_a_held_write_lock_does_not_hold_up_requests_that_need_no_write(
    tmp_path: Path,
) -> None:
    served = start_server(tmp_path, FAULT_FLOWS)
    try:
        holder = sqlite3.connect(served.home / "kitaru.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writing for a long time
        with served.client("run") as runner:
            writing = threading.Thread(
                target=lambda: runner.post(
                    f"{API}/flows/marked/executions",
                    json={"args": {"marks": str(tmp_path / "m"), "name": "w"}},
                ),
                daemon=True,
            )
            writing.start()  # waits for the lock in a thread
            time.sleep(0.3)
            started = time.monotonic()
            with served.client("read") as reader:
                assert reader.get(f"{API}/openapi.json").status_code == 200
                assert reader.get(f"{API}/executions").status_code == 200
            answered_in = time.monotonic() - started
            holder.execute("ROLLBACK")
            writing.join(timeout=30)
        assert answered_in < 2.0, answered_in  # the lock was held 0.3 s before and after
    finally:
        served.stop()


def test_concurrent_metadata_merges_lose_no_key() -> None:
    """``kitaru.log`` from several threads of one execution (checkpoints run side by
    side) merges into one JSON column: no writer's keys may be lost."""
    handle = pauses.run()
    store = get_store()

    def log_many(thread: int) -> None:
        for i in range(40):
            store.merge_execution_metadata(handle.exec_id, {f"t{thread}-{i}": i})

    threads = [threading.Thread(target=log_many, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metadata = KitaruClient().executions.get(handle.exec_id).metadata
    assert len([k for k in metadata if k[0] == "t"]) == 160


CLOSE_UNDER_READERS = """
import threading, time
from kitaru_core.store.metadata_store import get_store, reset_store_cache

errors = []
for _ in range(60):
    store = get_store()
    stop = threading.Event()

    def read():
        while not stop.is_set():
            try:
                store.list_executions()
            except Exception as exc:
                errors.append(str(exc))
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    time.sleep(0.003)
    reset_store_cache()  # what a server shutting down, or a test's teardown, does
    stop.set()
    for reader in readers:
        reader.join(10)
print(len(errors), "|".join(sorted(set(errors))))
"""


def test_closing_the_store_while_other_threads_read_it_does_not_crash_the_process(
    run_python: Any,
) -> None:
    # In a child process: the crash it guards against (CPython's sqlite3 closing a
    # connection under a running statement) would take the test's own process down.
    # A crash fails it, with the child's exit status and output.
    done = run_python("-c", CLOSE_UNDER_READERS, timeout=120)
    count, _, messages = done.stdout.strip().partition(" ")
    # A thread that read after the close was told so, by a message naming it.
    assert int(count) == 0 or all("closed" in m for m in messages.split("|")), messages
