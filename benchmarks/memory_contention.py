"""Memory writes under contention: 8 processes writing one key, on SQLite and PostgreSQL.

    python benchmarks/memory_contention.py [--database-url postgresql://...]

Prints, per metadata store: seconds for 8 x 200 plain ``set`` (every one must succeed)
and for 8 x 100 compare-and-set increments (with how many conflicts were retried),
from the moment all 8 processes are connected to the last write.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

WRITER = """
import sys, time
from kitaru import KitaruClient, KitaruStateError
mode, n, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
memories = KitaruClient().memories
memories.get_entry("warm-up")  # connected, schema checked: only the writes are timed
time.sleep(max(0.0, start - time.time()))
failures = conflicts = 0
for i in range(n):
    if mode == "set":
        try:
            memories.set("plainkey", i)
        except KitaruStateError:
            failures += 1
        continue
    while True:
        entry = memories.get_entry("counter")
        current = entry.version if entry else 0
        try:
            memories.set("counter", (entry.value if entry else 0) + 1, expected_version=current)
            break
        except KitaruStateError:
            conflicts += 1
print(failures, conflicts, time.time())
"""


def race(env: dict[str, str], mode: str, processes: int, n: int) -> tuple[float, int, int]:
    """Every process starts writing at the same moment, once imported and connected:
    the figure is the writes alone, from that moment to the last one's end."""
    subprocess.run(
        [sys.executable, "-c", WRITER, mode, "0", "0"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, mode, str(n), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = [p.communicate()[0].split() for p in procs]
    elapsed = max(float(o[2]) for o in outputs) - start
    return elapsed, sum(int(o[0]) for o in outputs), sum(int(o[1]) for o in outputs)


def measure(database_url: str | None, processes: int = 8) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    backends = [("sqlite", None)] + ([("postgresql", database_url)] if database_url else [])
    for name, url in backends:
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, KITARU_HOME=home)
            env.pop("KITARU_DATABASE_URL", None)
            schema = None
            if url:
                schema = f"bench_{uuid.uuid4().hex[:10]}"
                _pg(url, f"CREATE SCHEMA {schema}")
                env["KITARU_DATABASE_URL"] = f"{url}?options=-csearch_path%3D{schema}"
            try:
                set_s, failed, _ = race(env, "set", processes, 200)
                cas_s, _, conflicts = race(env, "cas", processes, 100)
            finally:
                if schema and url:
                    _pg(url, f"DROP SCHEMA {schema} CASCADE")
        figures[name] = {
            "set_seconds": set_s,
            "set_failures": failed,
            "cas_seconds": cas_s,
            "cas_conflicts": conflicts,
        }
    return figures


def _pg(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def report(figures: dict[str, dict[str, float]]) -> None:
    print("memory under contention (8 processes, one key):")
    for name, f in figures.items():
        print(
            f"  {name:<11} 8 x 200 set: {f['set_seconds']:.2f} s, {int(f['set_failures'])} failed;"
            f"  8 x 100 compare-and-set: {f['cas_seconds']:.2f} s, "
            f"{int(f['cas_conflicts'])} conflicts retried"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("KITARU_BENCH_DATABASE_URL"))
    report(measure(parser.parse_args().database_url))
