"""The worker's figures: crash to automatic recovery, timer lateness, an idle worker's
cost, and queue throughput on PostgreSQL with 1, 2 and 4 workers beside DBOS's queues.

    python benchmarks/worker.py [--database-url URL] [--peers]

Run by ``nox -s bench`` (``-- --peers`` adds DBOS). Wall-clock medians on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from peers import DBOS_THREE_STEPS  # noqa: E402
from run import env_with  # noqa: E402


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kitaru", "worker", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=120)


def _python(code: str, env: dict[str, str], check: bool = True) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip()


def _poll_status(env: dict[str, str], exec_id: str, wanted: str, timeout: float = 60) -> float:
    """Seconds until the execution has ``wanted`` status, polling the store every 5 ms."""
    code = (
        "import sys, time; from kitaru_core.store.metadata_store import get_store\n"
        "s = get_store(); deadline = time.time() + float(sys.argv[3])\n"
        "while s.require_execution(sys.argv[1]).status != sys.argv[2]:\n"
        "    assert time.time() < deadline, 'timed out'; time.sleep(0.005)\n"
        "print(time.time())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, exec_id, wanted, str(timeout)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def crash_to_recovery(rounds: int, url: str | None = None) -> float:
    """From the SIGKILL of a process running a 200-checkpoint flow to its result (the
    end the worker recorded), with one worker at its default settings (nobody types
    anything); on PostgreSQL when ``url`` is given."""
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as home:
            store = {"KITARU_DATABASE_URL": _fresh_schema(url, "kitaru_bench_crash")} if url else {}
            env = env_with(home, **store)
            _python("from kitaru_core.store.metadata_store import get_store; get_store()", env)
            worker = _worker(env)
            try:
                crash = subprocess.run(
                    [sys.executable, "-c", "import bench_flows as b; b.crash_after.run(200)"],
                    env=env_with(home, KITARU_BENCH_CRASH="1", **store),
                    check=False,
                )
                killed = time.time()
                assert crash.returncode == -9, crash
                exec_id = _python(
                    "from kitaru import KitaruClient; "
                    "print(KitaruClient().executions.latest().exec_id)",
                    env,
                )
                _poll_status(env, exec_id, "completed")
                # The end the worker recorded, not when this script saw it: the pollers'
                # own start-up is not the worker's latency.
                ended = _python(
                    "import sys; from kitaru_core.store.metadata_store import get_store; "
                    f"print(get_store().require_execution({exec_id!r}).ended_at)",
                    env,
                )
                times.append(float(ended) - killed)
            finally:
                _stop(worker)
    return statistics.median(times) * 1000


def timer_lateness(rounds: int) -> float:
    """How long after its deadline a timer's execution is resumed by a worker at its
    default poll (recorded in the store: the timer entry's end minus its deadline)."""
    lateness = []
    with tempfile.TemporaryDirectory() as home:
        env = env_with(home, KITARU_SLEEP_INLINE_SECONDS="0")
        worker = _worker(env)
        try:
            for i in range(rounds):
                exec_id = _python(
                    f"import bench_flows as b; print(b.nap.run({1.3 + 0.17 * i}).exec_id)", env
                )
                _poll_status(env, exec_id, "completed")
                entry = json.loads(
                    _python(
                        "import sys, json; from kitaru_core.store.metadata_store import "
                        "get_store; j = get_store().load_journal(sys.argv[1])[0]; "
                        "print(json.dumps([j.ended_at, j.metadata['wake_at']]))".replace(
                            "sys.argv[1]", repr(exec_id)
                        ),
                        env,
                    )
                )
                lateness.append(entry[0] - entry[1])
        finally:
            _stop(worker)
    return statistics.median(lateness) * 1000


def idle_worker(seconds: float = 10.0) -> dict[str, float]:
    """CPU share and store queries per second of a worker with nothing to do."""
    with tempfile.TemporaryDirectory() as home:
        env = env_with(home)
        _python("from kitaru_core.store.metadata_store import get_store; get_store()", env)
        worker = _worker(env)
        time.sleep(2.0)  # past start-up
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        before, started = cpu(), time.time()
        time.sleep(seconds)
        used, elapsed = cpu() - before, time.time() - started
        _stop(worker)
        status = json.loads(
            subprocess.run(
                [sys.executable, "-m", "kitaru", "worker", "status", "--output", "json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        passes = status[0]["counts"]["passes"]
        lifetime = status[0]["heartbeat_at"] - status[0]["started_at"]
    # One query per pass, and one heartbeat statement every 300 s while idle.
    return {"cpu_percent": 100 * used / elapsed, "queries_per_second": passes / lifetime + 1 / 300}


ENQUEUE = """
import sys, time
import bench_flows as b
from kitaru_core.runtime.engine import create_execution
from kitaru_core.stack_registry import get_stack
stack = get_stack()
create_execution(b.queued_three, ("warm-up",), {}, stack=stack)
print(time.time(), flush=True)
for i in range(int(sys.argv[1])):
    create_execution(b.queued_three, (f"t{i}",), {}, stack=stack)
"""

COUNT_DONE = """
import sys, time
from kitaru_core.store.metadata_store import get_store
db = get_store().db
n = int(sys.argv[1])
while db.fetchone("SELECT COUNT(*) FROM executions WHERE status = 'completed'")[0] < n:
    time.sleep(0.01)
print(time.time())
"""


def _fresh_schema(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{url}?options=-csearch_path%3D{name}"


def queue_throughput(url: str, count: int, workers: int) -> float:
    """Executions per second: ``count`` executions of a three-checkpoint flow put on
    its queue by one process while ``workers`` running worker processes (at their
    default poll and concurrency) drain it, all sharing one PostgreSQL store; from the
    first enqueue to the last completion."""
    with tempfile.TemporaryDirectory() as home:
        env = env_with(home, KITARU_DATABASE_URL=_fresh_schema(url, "kitaru_bench_queue"))
        _python("from kitaru_core.store.metadata_store import get_store; get_store()", env)
        procs = [_worker(env) for _ in range(workers)]
        try:
            time.sleep(2.0)  # the workers are up and polling
            started = float(_python(ENQUEUE.replace("sys.argv[1]", str(count)), env).split()[0])
            done = float(_python(COUNT_DONE.replace("sys.argv[1]", str(count + 1)), env))
        finally:
            for proc in procs:
                _stop(proc)
    return count / (done - started)


DBOS_QUEUE = (
    """
import os, sys, time, uuid
from dbos import DBOS

"""
    + DBOS_THREE_STEPS
    + """

role, n = sys.argv[1], int(sys.argv[2])
if role == "enqueue":  # a client: it enqueues and runs nothing
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=os.environ["BENCH_DB"])
    print(time.time(), flush=True)
    for i in range(n):
        client.enqueue({"workflow_name": "three_steps", "queue_name": "bench"}, f"t{i}")
    client.destroy()
else:
    DBOS(config={"name": "bench", "system_database_url": os.environ["BENCH_DB"],
                 "executor_id": uuid.uuid4().hex})
    DBOS.launch()
    # Eight at a time per process, like a Kitaru worker's default, polling at DBOS's
    # default interval (1 s), like Kitaru's.
    DBOS.register_queue("bench", worker_concurrency=8)
    while True:
        time.sleep(1)
"""
)


def dbos_queue_throughput(url: str, count: int, workers: int) -> float:
    """The same for DBOS queues: ``workers`` launched DBOS processes (eight at a time
    each, polling at DBOS's default), one client enqueueing; first enqueue to last
    completion."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS kitaru_bench_dbos WITH (FORCE)")
        conn.execute("CREATE DATABASE kitaru_bench_dbos")
    db_url = url.rsplit("/", 1)[0] + "/kitaru_bench_dbos"
    env = dict(os.environ, BENCH_DB=db_url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DBOS_QUEUE, "work", str(count)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:  # launched: schema made
            while conn.execute("SELECT to_regclass('dbos.workflow_status')").fetchone() == (None,):
                time.sleep(0.1)
        time.sleep(2.0)  # and polling
        enqueued = subprocess.run(
            [sys.executable, "-c", DBOS_QUEUE, "enqueue", str(count)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        started = float(enqueued.stdout.split()[0])
        with psycopg.connect(db_url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT COUNT(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"
                ).fetchone()
                if row and row[0] >= count:
                    break
                time.sleep(0.01)
        done = time.time()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return count / (done - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("KITARU_BENCH_DATABASE_URL"))
    parser.add_argument("--peers", action="store_true", help="DBOS queues beside Kitaru's")
    parser.add_argument("--executions", type=int, default=200)
    args = parser.parse_args()
    print("The worker (medians; local stack unless PostgreSQL is named)", flush=True)
    recovery = crash_to_recovery(args.rounds)
    print(
        f"  crash to automatic recovery (SIGKILL -> result, 200 checkpoints): {recovery:.0f} ms "
        "(target 300 ms)"
    )
    late = timer_lateness(args.rounds)
    print(f"  a due timer resumed after its deadline by: {late:.0f} ms (target 1000 ms)")
    idle = idle_worker()
    print(
        f"  idle worker: {idle['cpu_percent']:.2f}% CPU (target 1%), "
        f"{idle['queries_per_second']:.2f} queries/s (target 1)"
    )
    if not args.database_url:
        print("  queue throughput: needs PostgreSQL (--database-url)")
        return
    recovery = crash_to_recovery(args.rounds, args.database_url)
    print(f"  the same on PostgreSQL: {recovery:.0f} ms (target 300 ms)", flush=True)
    for workers in (1, 2, 4):
        ours = queue_throughput(args.database_url, args.executions, workers)
        line = (
            f"  queue throughput, {workers} worker(s), {args.executions} executions: {ours:.0f}/s"
        )
        if args.peers:
            try:
                theirs = dbos_queue_throughput(args.database_url, args.executions, workers)
                line += f"; DBOS {theirs:.0f}/s ({ours / theirs:.1f}x)"
            except Exception as exc:  # a peer that cannot run here is reported, not fatal
                line += f"; DBOS could not be measured: {type(exc).__name__}: {exc}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
