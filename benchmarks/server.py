"""The server's figures: ``POST /input`` to the flow's result (local orchestrator, the
worker inside the server), beside DBOS ``send``→``recv`` and LangGraph
``Command(resume=)``; ``GET /executions/{id}`` throughput and p99 with 16 concurrent
clients; the idle server's memory; a ``/metrics`` scrape over a journal of a million
steps (the first scrape folds them into totals, later ones read what is new).

    python benchmarks/server.py [--peers] [--rounds N]

Run by ``nox -s bench``. Wall-clock medians on this machine; the load generator shares
the machine's cores with the server, so throughput is a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from retention import seed_executions  # noqa: E402
from run import env_with  # noqa: E402

API = "/api/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``kitaru serve`` with its own home (``env``: more of its environment, such as
    ``KITARU_DATABASE_URL``) and an admin token."""

    def __init__(self, home: str, flows: list[str] | None = None, *args: str, **env: str) -> None:
        self.env = env_with(home, **env)
        made = subprocess.run(
            [sys.executable, "-m", "kitaru", "tokens", "create", "bench", "--scope", "admin"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.token = made.stdout.strip()
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kitaru",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *(a for f in flows or [str(HERE / "bench_flows.py")] for a in ("--flows", f)),
                *args,
            ],
            env=self.env,
            cwd=HERE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("kitaru serve did not start")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def input_to_result(server: Server, rounds: int) -> list[float]:
    """Seconds from sending the answer to reading the completed result."""
    times = []
    for i in range(rounds + 2):
        started = server.http.post(
            f"{API}/flows/approve/executions?wait=30", json={"args": {"n": i}}
        )
        exec_id = started.json()["exec_id"]
        assert started.json()["status"] == "waiting", started.text
        t0 = time.perf_counter()
        answered = server.http.post(f"{API}/executions/{exec_id}/input", json={"value": True})
        assert answered.status_code == 200, answered.text
        while True:
            got = server.http.get(f"{API}/executions/{exec_id}").json()
            if got["status"] == "completed":
                break
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        assert got["result"] == "approved"
        if i >= 2:  # the first runs warm the worker's imports
            times.append(elapsed)
    return times


def scrapes(server: Server, rounds: int) -> tuple[float, list[float]]:
    """Seconds of the first ``/metrics`` scrape, and of the ``rounds`` after it."""
    times = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        got = server.http.get("/metrics")
        times.append(time.perf_counter() - t0)
        assert got.status_code == 200, got.text
    return times[0], times[1:]


async def _load(url: str, token: str, exec_id: str, clients: int, seconds: float) -> list[float]:
    """Latencies of ``clients`` keep-alive clients for ``seconds``, in steady state: each
    client opens its connection and sends one untimed request before the clock starts
    (otherwise the 1% slowest are the first requests queued behind 16 connects)."""
    latencies: list[float] = []
    ready = asyncio.Barrier(clients)
    deadline = 0.0

    async def client() -> None:
        nonlocal deadline
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            await http.get(f"{API}/executions/{exec_id}")
            await ready.wait()
            deadline = deadline or time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                response = await http.get(f"{API}/executions/{exec_id}")
                latencies.append(time.perf_counter() - t0)
                assert response.status_code == 200

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


LOAD_SCRIPT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[5])
from server import _load
lat = asyncio.run(_load(sys.argv[1], sys.argv[2], sys.argv[3], 16, float(sys.argv[4])))
print(json.dumps(lat))
"""


def throughput(server: Server, seconds: float) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p99 ms) of GET /executions/{id}, 16 clients, from a
    process of its own (the server has the other core)."""
    started = server.http.post(
        f"{API}/flows/timed_steps/executions?wait=30", json={"args": {"n": 5}}
    )
    exec_id = started.json()["exec_id"]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_SCRIPT,
            server.url,
            server.token,
            exec_id,
            str(seconds),
            str(HERE),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    latencies = sorted(json.loads(out.stdout))
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return len(latencies) / seconds, statistics.median(latencies) * 1000, p99 * 1000


DBOS_SEND_RECV = """
import os, sys, time
from dbos import DBOS
DBOS(config={"name": "bench", "system_database_url": "sqlite:///" + os.environ["BENCH_DB"]})

@DBOS.step()
def record_decision(ok):
    return "approved" if ok else "rejected"

@DBOS.workflow()
def approve(n):
    ok = DBOS.recv("ok", timeout_seconds=60)
    return record_decision(ok)

DBOS.launch()
times = []
for i in range(int(sys.argv[1]) + 2):
    handle = DBOS.start_workflow(approve, i)
    time.sleep(0.2)  # let it reach recv
    t0 = time.perf_counter()
    DBOS.send(handle.get_workflow_id(), True, "ok")
    assert handle.get_result() == "approved"
    if i >= 2:
        times.append(time.perf_counter() - t0)
print(sorted(times)[len(times) // 2])
DBOS.destroy()
"""

LANGGRAPH_RESUME = """
import os, sys, time, sqlite3
from langgraph.func import entrypoint, task
from langgraph.types import Command, interrupt
from langgraph.checkpoint.sqlite import SqliteSaver
saver = SqliteSaver(sqlite3.connect(os.environ["BENCH_DB"], check_same_thread=False))

@task
def record_decision(ok):
    return "approved" if ok else "rejected"

@entrypoint(checkpointer=saver)
def approve(n):
    ok = interrupt(f"Approve {n}?")
    return record_decision(ok).result()

times = []
for i in range(int(sys.argv[1]) + 2):
    config = {"configurable": {"thread_id": f"t{i}"}}
    approve.invoke(i, config)
    t0 = time.perf_counter()
    result = approve.invoke(Command(resume=True), config)
    assert result == "approved", result
    if i >= 2:
        times.append(time.perf_counter() - t0)
print(sorted(times)[len(times) // 2])
"""


def _peer(script: str, rounds: int) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", script, str(rounds)],
            env=dict(os.environ, BENCH_DB=os.path.join(tmp, "peer.sqlite")),
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        print(f"  (peer failed: {out.stderr.strip().splitlines()[-1:]})")
        return None
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", action="store_true")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as home:
        server = Server(home)
        try:
            time.sleep(2.0)
            idle = server.rss_mb()
            latencies = input_to_result(server, args.rounds)
            rps, p50, p99 = throughput(server, args.seconds)
        finally:
            server.stop()
    with tempfile.TemporaryDirectory() as home:
        subprocess.run(
            [sys.executable, "-m", "kitaru", "executions", "list"],
            env=env_with(home),
            check=True,
            stdout=subprocess.DEVNULL,
        )  # makes the store
        seed_executions(home, 100_000, days=1)  # a million journal entries
        server = Server(home)
        try:
            first_scrape, later_scrapes = scrapes(server, 20)
        finally:
            server.stop()
    print("kitaru serve (SQLite, local orchestrator, worker in the server)")
    print(
        f"  POST /input to result: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} (target < 300 ms)"
    )
    print(f"  GET /executions/ID, 16 clients: {rps:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"  idle server memory: {idle:.0f} MB RSS")
    print(
        f"  /metrics over 1,000,000 recorded steps: first scrape {first_scrape * 1000:.0f} ms, "
        f"then median {statistics.median(later_scrapes) * 1000:.1f} ms"
    )
    if args.peers:
        dbos = _peer(DBOS_SEND_RECV, args.rounds)
        langgraph = _peer(LANGGRAPH_RESUME, args.rounds)
        if dbos is not None:
            print(
                f"  DBOS send -> workflow result (in process, SQLite): median {dbos * 1000:.1f} ms"
            )
        if langgraph is not None:
            print(f"  LangGraph Command(resume=) -> result: median {langgraph * 1000:.1f} ms")


if __name__ == "__main__":
    main()
