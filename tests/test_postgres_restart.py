"""PostgreSQL itself restarts while ``kitaru serve --worker`` and a ``kitaru worker``
run flows: every execution completes, no step runs twice, and nothing is restarted by
hand. The cluster is shared by every test, so this file runs on its own (``nox -s
tests`` runs the ``restarts_postgres`` marker after the PostgreSQL suite)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conftest import PG_URL
from kitaru_server import FAULT_FLOWS, start_server
from postgres_cluster import local_cluster, restart

API = "/api/v1"
CLUSTER = local_cluster(PG_URL)
pytestmark = [
    pytest.mark.restarts_postgres,
    pytest.mark.skipif(
        CLUSTER is None,
        reason="restarts PostgreSQL: needs a cluster pg_ctlcluster may restart "
        "(run as root or as the cluster's owner)",
    ),
]


def status_of(client: httpx.Client, exec_id: str) -> str:
    """The execution's status; ``unavailable`` while the server answers 503."""
    response = client.get(f"{API}/executions/{exec_id}")
    if response.status_code == 503:
        return "unavailable"
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def test_server_and_worker_ride_out_a_postgresql_restart(tmp_path: Path) -> None:
    assert CLUSTER is not None
    marks = tmp_path / "marks.txt"
    served = start_server(tmp_path, FAULT_FLOWS)
    worker = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "worker"],
        env=served.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        names = [f"restart-{i}" for i in range(6)]
        with served.client("run") as runner:
            for name in names:
                started = runner.post(
                    f"{API}/flows/marked/executions",
                    json={"args": {"marks": str(marks), "name": name, "steps": 10}},
                    headers={"Idempotency-Key": name},
                )
                assert started.status_code == 201, started.text
            time.sleep(0.3)  # under way
            restart(CLUSTER)
            deadline = time.monotonic() + 90
            pending = set(names)
            while pending:
                pending = {n for n in pending if status_of(runner, n) != "completed"}
                for name in pending:
                    assert status_of(runner, name) in ("running", "queued", "unavailable")
                assert time.monotonic() < deadline, pending
                time.sleep(0.1)
            # The same server and worker take new work.
            again = runner.post(
                f"{API}/flows/marked/executions?wait=30",
                json={"args": {"marks": str(marks), "name": "after", "steps": 1}},
            )
            assert again.status_code == 201, again.text
            assert again.json()["status"] == "completed"
        counts = Counter(marks.read_text().split())
        assert set(counts) == {f"{n}:{i}" for n in names for i in range(10)} | {"after:0"}
        assert [label for label, n in counts.items() if n > 1] == []  # none ran twice
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        served.stop()
