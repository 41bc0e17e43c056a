"""What a checkpoint costs through ``kitaru serve`` on loopback (the HTTP metadata
store of a logged-in machine), beside SQLite and PostgreSQL used directly.

    python benchmarks/http_store.py [--database-url URL] [--rounds N] [--checkpoints N]

Recording overhead is the time of N checkpoint calls inside a flow minus the same N
plain calls, in a fresh process each round; medians. The server keeps its journal in
SQLite (and, with ``--database-url``, in PostgreSQL too). Run by ``nox -s bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import env_with  # noqa: E402
from server import Server  # noqa: E402

TARGET_MS = 1.0
RECORD = """
import json, sys, time
import bench_flows as b
n = int(sys.argv[1])
b.timed_steps.run(50).wait()  # warm up: connections, the stack, caches
started = time.perf_counter()
for i in range(n):
    b.plain_step(i)
plain = time.perf_counter() - started
recorded = b.timed_steps.run(n).wait()
print(json.dumps({"record": (recorded - plain) / n}))
"""


def _pg_schema(url: str) -> tuple[str, str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema, f"{url}?options=-csearch_path%3D{schema}"


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def served(home: str, database_url: str | None) -> Iterator[dict[str, str]]:
    """A ``kitaru serve`` with its own home; the environment of a machine logged in."""
    env = {"KITARU_DATABASE_URL": database_url} if database_url else {}
    server = Server(home, None, "--no-worker", **env)
    try:
        yield {"KITARU_SERVER_URL": server.url, "KITARU_TOKEN": server.token}
    finally:
        server.stop()


def per_checkpoint_ms(rounds: int, n: int, **extra: str) -> float:
    figures = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as home:
            out = subprocess.run(
                [sys.executable, "-c", RECORD, str(n)],
                env=env_with(home, **extra),
                check=True,
                capture_output=True,
                text=True,
            )
        figures.append(json.loads(out.stdout)["record"])
    return statistics.median(figures) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkpoints", type=int, default=500)
    args = parser.parse_args()
    rows: list[tuple[str, float]] = []
    rows.append(("SQLite, direct", per_checkpoint_ms(args.rounds, args.checkpoints)))
    with tempfile.TemporaryDirectory() as server_home, served(server_home, None) as login:
        ms = per_checkpoint_ms(args.rounds, args.checkpoints, **login)
        rows.append(("kitaru serve on loopback (its store: SQLite)", ms))
    if args.database_url:
        schema, url = _pg_schema(args.database_url)
        try:
            ms = per_checkpoint_ms(args.rounds, args.checkpoints, KITARU_DATABASE_URL=url)
            rows.append(("PostgreSQL, direct", ms))
        finally:
            _drop(args.database_url, schema)
        schema, url = _pg_schema(args.database_url)
        try:
            with tempfile.TemporaryDirectory() as server_home, served(server_home, url) as login:
                ms = per_checkpoint_ms(args.rounds, args.checkpoints, **login)
                rows.append(("kitaru serve on loopback (its store: PostgreSQL)", ms))
        finally:
            _drop(args.database_url, schema)
    print(f"\nrecording overhead per checkpoint, medians of {args.rounds} ({os.cpu_count()} cores)")
    for name, ms in rows:
        over = (
            ""
            if "serve" not in name
            else ("  (target 1.0 ms)" if ms <= TARGET_MS else "  (over the 1.0 ms target)")
        )
        print(f"  {name:<50} {ms:7.3f} ms{over}")


if __name__ == "__main__":
    main()
