"""Seconds from a PostgreSQL restart to the first completed execution, with ``kitaru
serve`` (and its worker) and a ``kitaru worker`` running flows through it.

    python benchmarks/postgres_restart.py --database-url URL [--rounds 3]

The cluster is restarted for real (``pg_ctlcluster``: as root or as its owner), so run
it alone on the machine. Run by ``nox -s bench`` where that is possible. Target: 5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
API = "/api/v1"
EXECUTIONS = 4


def one_round(cluster: tuple[str, str]) -> tuple[float, float]:
    """(seconds the restart took, seconds from the database accepting again to the
    first execution completed after it)."""
    from kitaru_server import FAULT_FLOWS, start_server
    from postgres_cluster import restart

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        served = start_server(base, FAULT_FLOWS)
        worker = subprocess.Popen(
            [sys.executable, "-m", "kitaru", "worker"],
            env=served.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            names = [f"bench-{i}" for i in range(EXECUTIONS)]
            with served.client("run") as runner:
                for name in names:
                    runner.post(
                        f"{API}/flows/marked/executions",
                        json={"args": {"marks": str(base / "marks"), "name": name, "steps": 20}},
                        headers={"Idempotency-Key": name},
                    ).raise_for_status()
                time.sleep(0.3)
                began = time.monotonic()
                restart(cluster)
                back = time.monotonic()
                deadline = back + 120
                while time.monotonic() < deadline:
                    statuses = [runner.get(f"{API}/executions/{n}") for n in names]
                    done = [r for r in statuses if r.status_code == 200]
                    if any(r.json()["status"] == "completed" for r in done):
                        return back - began, time.monotonic() - back
                    time.sleep(0.02)
                raise SystemExit("no execution completed within 120 s of the restart")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            served.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("KITARU_BENCH_DATABASE_URL"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.database_url:
        print("PostgreSQL restart: needs PostgreSQL (--database-url)")
        return
    os.environ["KITARU_TEST_DATABASE_URL"] = args.database_url
    sys.path.insert(0, str(TESTS))
    from postgres_cluster import local_cluster

    cluster = local_cluster(args.database_url)
    if cluster is None:
        print("PostgreSQL restart: skipped (no cluster here that pg_ctlcluster may restart)")
        return
    rounds = [one_round(cluster) for _ in range(args.rounds)]
    restarting = statistics.median(r[0] for r in rounds)
    to_first = statistics.median(r[1] for r in rounds)
    print(
        f"PostgreSQL restart ({args.rounds} rounds, medians): the restart took "
        f"{restarting:.2f} s; from the database accepting again to the first completed "
        f"execution {to_first:.2f} s (target 5 s); from the restart's start "
        f"{restarting + to_first:.2f} s"
    )


if __name__ == "__main__":
    main()
