"""A machine that holds a token and not the database: ``kitaru login``, then flows that
record through ``kitaru serve`` (the HTTP metadata store), in real processes.

The "laptop" has a Kitaru home of its own with no database and no database URL; the
server has its own home and database (PostgreSQL in the PostgreSQL run)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TESTS_DIR, error_line
from kitaru_server import Served, start_server, wait_for_status

LAPTOP_FLOWS = """
import os, time
import kitaru
from kitaru import checkpoint, flow

@checkpoint
def step(marks: str, label: str, size: int) -> str:
    with open(marks, "a") as f:
        f.write(label + "\\n")
    return label[0] * size

@flow
def trip(marks: str) -> list[int]:
    first = step(marks, "first", 10)
    time.sleep(float(os.environ.get("TRIP_PAUSE", "0")))  # a SIGKILL lands here
    second = step(marks, "second", 100_000)  # over the inline limit: a blob on the server
    kitaru.memory.set("trips", len(first) + len(second))
    return [len(first), len(second)]

@flow
def asks(topic: str) -> str:
    answer = kitaru.wait(schema=str, name="answer", question=f"go on with {topic}?")
    return f"{topic}: {answer}"

@flow
def naps(seconds: float) -> str:
    kitaru.sleep(seconds)
    return "rested"

@flow
def parent(n: int) -> int:
    return trip.run(os.environ["TRIP_MARKS"]).wait()[0] + n
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(tmp_path_factory.mktemp("metadata-plane"))
    yield server
    server.stop()


class Laptop:
    def __init__(self, home: Path, script: Path, served: Served) -> None:
        self.home, self.script, self.served = home, script, served
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("KITARU_") or k == "KITARU_LLM_MOCK_RESPONSE"
        }
        self.env.update(KITARU_HOME=str(home), PYTHONPATH=str(TESTS_DIR))

    def kitaru(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kitaru", *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
            env={**self.env, **env},
            cwd=self.script.parent,
        )

    def start(self, flow: str, *args: str, **env: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "kitaru", "run", f"{self.script}:{flow}", *args]
        return subprocess.Popen(
            command,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.script.parent,
        )

    @contextlib.contextmanager
    def worker(self) -> Iterator[None]:
        """``kitaru worker`` on this machine, logged in as it is, while the block runs."""
        process = subprocess.Popen(
            [sys.executable, "-m", "kitaru", "worker"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.script.parent,
        )
        try:
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    def executions(self) -> list[dict[str, object]]:
        listed = self.kitaru("executions", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        return list(json.loads(listed.stdout))


@pytest.fixture
def laptop(served: Served, tmp_path: Path) -> Laptop:
    script = tmp_path / "laptop_flows.py"
    script.write_text(textwrap.dedent(LAPTOP_FLOWS))
    machine = Laptop(tmp_path / "laptop-home", script, served)
    logged = machine.kitaru("login", served.url, stdin=served.tokens["run"] + "\n")
    assert logged.returncode == 0, logged.stderr
    assert "as token 'test-run' with scope 'run'" in logged.stdout
    return machine


def _on_server(served: Served, exec_id: str) -> dict[str, object]:
    with served.client("read") as http:
        found = http.get(f"/api/v1/executions/{exec_id}")
    assert found.status_code == 200, found.text
    data: dict[str, object] = found.json()
    return data


def test_a_logged_in_laptop_records_its_flow_on_the_server(
    served: Served, laptop: Laptop, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    ran = laptop.start("trip", "--arg", f"marks={marks}")
    _out, err = ran.communicate(timeout=120)
    assert ran.returncode == 0, err
    listed = laptop.executions()[0]  # the newest
    exec_id = str(listed["exec_id"])
    assert listed["status"] == "completed"
    data = _on_server(served, exec_id)
    assert data["status"] == "completed" and data["result"] == [10, 100_000]
    assert [c["name"] for c in data["checkpoints"]] == ["step", "step", "memory.set:trips"]
    assert data["started_by"] == "test-run"
    shown = laptop.kitaru("executions", "get", exec_id)
    assert "started by token test-run" in shown.stdout
    # The laptop keeps the login and its own signing key; no database, no database URL.
    assert sorted(p.name for p in laptop.home.iterdir() if p.is_file()) == [
        "login.json",
        "signing.key",
    ]
    login = (laptop.home / "login.json").read_text()
    assert (laptop.home / "login.json").stat().st_mode & 0o777 == 0o600
    assert "postgresql" not in login and "sqlite" not in login
    # Its events went to the server too: the server's CLI shows the log.
    logs = served.kitaru("executions", "logs", exec_id)
    assert "completed" in logs.stdout, logs.stderr
    status = laptop.kitaru("status", "-o", "json")
    assert json.loads(status.stdout)["token"] == "test-run"


def test_a_killed_laptop_run_is_resumed_by_the_laptop_without_redoing_a_checkpoint(
    served: Served, laptop: Laptop, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    ran = laptop.start("trip", "--arg", f"marks={marks}", TRIP_PAUSE="60")
    deadline = time.monotonic() + 60
    exec_id = None
    while exec_id is None:
        assert time.monotonic() < deadline and ran.poll() is None
        for e in laptop.executions():
            journal = _on_server(served, str(e["exec_id"]))["checkpoints"]
            if [c["status"] for c in journal] == ["completed"]:  # type: ignore[union-attr]
                exec_id = str(e["exec_id"])
        time.sleep(0.1)
    ran.send_signal(signal.SIGKILL)
    ran.wait()
    assert _on_server(served, exec_id)["status"] == "running"
    resumed = laptop.kitaru("executions", "resume", exec_id)
    assert resumed.returncode == 0, resumed.stderr
    data = _on_server(served, exec_id)
    assert data["status"] == "completed" and data["result"] == [10, 100_000]
    assert marks.read_text().split() == ["first", "second"]  # the first ran once


def test_a_read_token_is_refused_before_anything_is_recorded(
    served: Served, laptop: Laptop, tmp_path: Path
) -> None:
    reader = served.tokens["read"]
    before = laptop.executions()
    ran = laptop.kitaru(
        "run", f"{laptop.script}:trip", "--arg", f"marks={tmp_path / 'm'}", KITARU_TOKEN=reader
    )
    line = error_line(ran)
    assert "token 'test-read' has scope 'read'" in line and "needs 'run'" in line
    assert laptop.executions() == before
    assert not (tmp_path / "m").exists()


def test_a_wait_is_answered_and_a_timer_woken_through_the_server(
    served: Served, laptop: Laptop
) -> None:
    asked = laptop.kitaru("run", f"{laptop.script}:asks", "--arg", "topic=launch")
    assert asked.returncode == 0, asked.stderr
    waiting = next(e for e in laptop.executions() if e["flow_name"] == "asks")
    exec_id = str(waiting["exec_id"])
    assert waiting["status"] == "waiting"
    answered = laptop.kitaru("executions", "input", exec_id, "--value", '"yes"')
    assert answered.returncode == 0, answered.stderr
    with served.client("read") as http:
        assert wait_for_status(http, exec_id, ("completed",))["result"] == "launch: yes"
    # A durable timer, woken by a worker that talks to the server and not the database.
    napped = laptop.kitaru(
        "run", f"{laptop.script}:naps", "--arg", "seconds=1", KITARU_SLEEP_INLINE_SECONDS="0"
    )
    assert napped.returncode == 0, napped.stderr
    sleeping = next(e for e in laptop.executions() if e["flow_name"] == "naps")
    assert sleeping["status"] == "sleeping"
    with laptop.worker(), served.client("read") as http:
        done = wait_for_status(http, str(sleeping["exec_id"]), ("completed",))
    assert done["result"] == "rested"


def test_memory_and_child_flows_through_the_server(
    served: Served, laptop: Laptop, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    ran = laptop.kitaru("run", f"{laptop.script}:parent", "--arg", "n=1", TRIP_MARKS=str(marks))
    assert ran.returncode == 0, ran.stderr
    parent = next(e for e in laptop.executions() if e["flow_name"] == "parent")
    assert _on_server(served, str(parent["exec_id"]))["result"] == 11
    child = _on_server(served, f"{parent['exec_id']}.0")
    assert child["flow_name"] == "trip" and child["parent_exec_id"] == parent["exec_id"]
    # Compare-and-set over HTTP: a stale version is refused, the current one wins.
    scope = ("--scope", "trip", "--scope-type", "flow")  # a flow writes to its own
    got = laptop.kitaru("memory", "get", "trips", *scope, "-o", "json")
    assert got.returncode == 0, got.stderr
    version = json.loads(got.stdout)["version"]
    stale = laptop.kitaru(
        "memory", "set", "trips", "1", *scope, "--expected-version", str(version - 1)
    )
    assert "someone else wrote it first" in error_line(stale)
    fresh = laptop.kitaru("memory", "set", "trips", "1", *scope, "--expected-version", str(version))
    assert fresh.returncode == 0, fresh.stderr
    with served.client("read") as http:
        kept = http.get("/api/v1/memory/flow/trip/trips").json()
    assert kept["version"] == version + 1 and kept["value"] == 1


def test_an_upload_that_does_not_hash_to_its_key_is_refused(served: Served) -> None:
    with served.client("run") as http:
        wrong = http.put("/api/v1/stacks/local/blobs/" + "0" * 64, content=b"not these bytes")
        assert wrong.status_code == 400
        assert "nothing was stored" in wrong.json()["detail"]
        assert http.head("/api/v1/stacks/local/blobs/" + "0" * 64).status_code == 404
    with served.client("read") as http:
        refused = http.put("/api/v1/stacks/local/blobs/" + "0" * 64, content=b"x")
        assert refused.status_code == 403


def test_the_research_agent_example_runs_through_the_server(served: Served, laptop: Laptop) -> None:
    example = TESTS_DIR.parent / "examples" / "research_agent.py"
    started = subprocess.run(
        [sys.executable, str(example)],
        env={**laptop.env, "OPENAI_API_KEY": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    exec_id, status = started.stdout.split()[:2]
    assert status == "waiting"
    answered = laptop.kitaru("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert answered.returncode == 0, answered.stderr
    with served.client("read") as http:
        done = wait_for_status(http, exec_id, ("completed",))
    assert done["result"]["published"] is True
    # Its model requests were recorded on the server, and count against its budget.
    shown = served.kitaru("executions", "get", exec_id)
    assert "3 of 10 calls" in shown.stdout, shown.stdout


def test_a_worker_logged_in_recovers_a_killed_run_of_its_machine(
    served: Served, laptop: Laptop, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    ran = laptop.start("trip", "--arg", f"marks={marks}", TRIP_PAUSE="60")
    deadline = time.monotonic() + 60
    while not marks.exists() or "first" not in marks.read_text():
        assert time.monotonic() < deadline and ran.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)  # the first step's entry is recorded before the pause
    ran.send_signal(signal.SIGKILL)
    ran.wait()
    exec_id = str(next(e for e in laptop.executions() if e["status"] == "running")["exec_id"])
    # A worker of this machine (its key signed the run) with a URL and a token only.
    with laptop.worker(), served.client("read") as http:
        done = wait_for_status(http, exec_id, ("completed",))
    assert done["result"] == [10, 100_000]
    assert marks.read_text().split() == ["first", "second"]
