"""A real ``kitaru serve`` for the tests: its own home (and PostgreSQL schema), a free
loopback port, and tokens of every scope."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conftest import PG_URL, TESTS_DIR, _pg
from kitaru_core.testing.fixtures import ISOLATED_VARIABLES

REVIEW_FLOW = str(TESTS_DIR.parent / "examples" / "review_flow.py")
SERVER_FLOWS = str(TESTS_DIR / "server_flows.py")
FAULT_FLOWS = str(TESTS_DIR / "fault_flows.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    env: dict[str, str]
    home: Path
    process: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)
    schema: str | None = None

    def client(self, scope: str | None = "admin", **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def kitaru(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kitaru", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**self.env, **env},
        )

    def token(self, name: str, scope: str, *extra: str) -> str:
        made = self.kitaru("tokens", "create", name, "--scope", scope, "-o", "json", *extra)
        assert made.returncode == 0, made.stderr
        return str(json.loads(made.stdout)["token"])

    def log(self) -> str:
        path = self.home.parent / "server.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.schema:
            _pg(f"DROP SCHEMA {self.schema} CASCADE")


def start_server(
    base: Path,
    *flows: str,
    extra_args: tuple[str, ...] = (),
    file_limit: int | None = None,
    **env: str,
) -> Served:
    home = base / "kitaru-home"
    environ = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    environ.update(
        KITARU_HOME=str(home),
        PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
        KITARU_LLM_MOCK_RESPONSE="a fact",
        **env,
    )
    schema = None
    if PG_URL:
        schema = f"s_{uuid.uuid4().hex[:12]}"
        _pg(f"CREATE SCHEMA {schema}")
        # Named after the schema, so a test can drop this server's connections alone.
        environ["KITARU_DATABASE_URL"] = (
            f"{PG_URL}?options=-csearch_path%3D{schema}&application_name={schema}"
        )
    port = free_port()
    args = [sys.executable, "-m", "kitaru", "serve", "--port", str(port), "--log-level", "warning"]
    for source in flows:
        args += ["--flows", source]
    log = open(base / "server.log", "wb")  # noqa: SIM115 (the server's whole life)

    def limit_files() -> None:  # in the server's process, before it runs
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

    process = subprocess.Popen(
        [*args, *extra_args],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=base,
        preexec_fn=limit_files if file_limit is not None else None,
    )
    served = Served(f"http://127.0.0.1:{port}", environ, home, process, schema=schema)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(served.url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise AssertionError(f"kitaru serve did not start:\n{served.log()}")
        time.sleep(0.1)
    for scope in ("read", "input", "run", "admin"):
        served.tokens[scope] = served.token(f"test-{scope}", scope)
    return served


def wait_for_status(
    client: httpx.Client, exec_id: str, statuses: tuple[str, ...], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = client.get(f"/api/v1/executions/{exec_id}")
        assert found.status_code == 200, found.text
        data: dict[str, Any] = found.json()
        if data["status"] in statuses:
            return data
        assert time.monotonic() < deadline, f"{exec_id} stayed {data['status']}"
        time.sleep(0.05)
