"""Retention at scale: ``kitaru executions prune`` over many old executions and
``kitaru artifacts gc`` over many unreferenced blobs, each in a fresh process, with its
time and peak memory. Both work a page at a time, so memory should not grow with the
count.

    python benchmarks/retention.py [--executions N] [--blobs N]

Run by ``nox -s bench``. SQLite, the local artifact store.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import env_with  # noqa: E402

MEASURE = r"""
import resource, subprocess, sys, time
began = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(time.perf_counter() - began, peak)
"""


def _measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of ``cmd`` run by a small parent of its own."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], env=env, check=True, capture_output=True, text=True
    )
    seconds, peak = out.stdout.split()
    return float(seconds), float(peak)


def _kitaru(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "kitaru", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


def seed_executions(home: str, count: int, *, steps: int = 10, days: float = 40) -> None:
    """``count`` completed executions from ``days`` ago, ``steps`` journal entries each
    (of a few durations), with the metadata a real one carries (options, a note)."""
    old = time.time() - days * 86_400
    options = '{"retries": 0, "cache": true, "source_root": "' + "x" * 200 + '"}'
    db = sqlite3.connect(Path(home) / "kitaru.db")
    with db:
        db.executemany(
            "INSERT INTO executions (id, flow_name, flow_ref, status, stack, created_at, "
            "started_at, ended_at, options, metadata) VALUES (?, 'old', 'old:old', "
            "'completed', 'default', ?, ?, ?, ?, ?)",
            (
                (f"old{e:07d}", old + e, old + e, old + e, options, '{"note": "' + "y" * 500 + '"}')
                for e in range(count)
            ),
        )
        db.executemany(
            "INSERT INTO journal (exec_id, position, name, status, started_at, ended_at) "
            "VALUES (?, ?, 'step', 'completed', ?, ?)",
            (
                (f"old{i // steps:07d}", i % steps, old, old + (i % 7) * 0.01)
                for i in range(count * steps)
            ),
        )
    db.close()


def seed_blobs(home: str, referenced: int, unreferenced: int) -> None:
    """Blobs in the local artifact store: ``referenced`` of them with an artifact row
    (of a kept execution), ``unreferenced`` with none."""
    root = Path(home) / "artifacts"
    # Content hashes, as real keys are: spread over the store's 256 directories.
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(referenced + unreferenced)]
    for key in keys:
        directory = root / key[:2]
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (directory / key).write_bytes(b"a blob")
    now = time.time()
    db = sqlite3.connect(Path(home) / "kitaru.db")
    with db:
        db.execute(
            "INSERT INTO executions (id, flow_name, flow_ref, status, stack, created_at) "
            "VALUES ('kept', 'kept', 'kept:kept', 'completed', 'default', ?)",
            (now,),
        )
        db.executemany(
            "INSERT INTO artifacts (id, exec_id, name, role, key, serializer, type_ref, size, "
            "created_at) VALUES (?, 'kept', 'out', 'output', ?, 'bytes', 'builtins:bytes', 6, ?)",
            ((f"a{i}", key, now) for i, key in enumerate(keys[:referenced])),
        )
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=50_000)
    parser.add_argument("--blobs", type=int, default=50_000, help="referenced, and as many not")
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as home:
        env = env_with(home)
        _kitaru(env, "executions", "list")  # makes the store
        baseline = _measured([sys.executable, "-m", "kitaru", "executions", "list"], env)
        seed_executions(home, args.executions)
        prune = _measured(
            [sys.executable, "-m", "kitaru", "executions", "prune", "--older-than", "30d"], env
        )
        seed_blobs(home, args.blobs, args.blobs)
        gc = _measured([sys.executable, "-m", "kitaru", "artifacts", "gc", "--settle", "0"], env)
    print("retention (SQLite, local artifact store; one process each)")
    print(f"  a CLI command that does nothing much, for reference: peak {baseline[1]:.0f} MiB")
    print(
        f"  prune {args.executions:,} old executions ({args.executions * 10:,} journal "
        f"entries): {prune[0]:.1f} s, peak {prune[1]:.0f} MiB"
    )
    print(
        f"  gc over {args.blobs:,} referenced and {args.blobs:,} unreferenced blobs: "
        f"{gc[0]:.1f} s, peak {gc[1]:.0f} MiB"
    )


if __name__ == "__main__":
    os.umask(0o077)
    main()
