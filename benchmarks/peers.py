"""The same figures for DBOS Transact and LangGraph's functional API, on SQLite, measured
the same way as Kitaru's (``nox -s bench -- --peers`` installs them)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

DBOS_THREE_STEPS = """
@DBOS.step()
def fetch(topic):
    return "notes on " + topic

@DBOS.step()
def draft(notes):
    return notes.upper()

@DBOS.step()
def publish(text):
    return len(text)

@DBOS.workflow()
def three_steps(topic):
    return publish(draft(fetch(topic)))
"""

DBOS_SETUP = (
    """
import os, sys, time
from dbos import DBOS, SetWorkflowID

@DBOS.step()
def step(i):
    return {"i": i}

def plain_step(i):
    return {"i": i}

@DBOS.workflow()
def timed_steps(n):
    started = time.perf_counter()
    for i in range(n):
        step(i)
    return time.perf_counter() - started

@DBOS.workflow()
def crash_after(n):
    total = sum(step(i)["i"] for i in range(n))
    if os.environ.get("BENCH_CRASH") == "1":
        os.kill(os.getpid(), 9)
    return total

"""
    + DBOS_THREE_STEPS
    + """
DBOS(config={"name": "bench", "system_database_url": "sqlite:///" + os.environ["BENCH_DB"]})
DBOS.launch()
"""
)

DBOS_RECORD = (
    DBOS_SETUP
    + """
n = int(sys.argv[1])
timed_steps(50)
started = time.perf_counter()
for i in range(n):
    plain_step(i)
plain = time.perf_counter() - started
print((timed_steps(n) - plain) / n)
"""
)

DBOS_CRASH = (
    DBOS_SETUP
    + """
with SetWorkflowID("crashed"):
    crash_after(int(sys.argv[1]))
"""
)

DBOS_RECOVER = (
    DBOS_SETUP
    + """
assert DBOS.retrieve_workflow("crashed").get_result() == int(sys.argv[1])
"""
)

DBOS_THREE = (
    DBOS_SETUP
    + """
three_steps("x")
"""
)

LANGGRAPH_SETUP = """
import os, sys, time, sqlite3
from langgraph.func import entrypoint, task
from langgraph.checkpoint.sqlite import SqliteSaver

saver = SqliteSaver(sqlite3.connect(os.environ["BENCH_DB"], check_same_thread=False))

@task
def step(i):
    return {"i": i}

def plain_step(i):
    return {"i": i}

@entrypoint(checkpointer=saver)
def timed_steps(n):
    started = time.perf_counter()
    for i in range(n):
        step(i).result()
    return time.perf_counter() - started

@task
def fetch(topic):
    return "notes on " + topic

@task
def draft(notes):
    return notes.upper()

@task
def publish(text):
    return len(text)

@entrypoint(checkpointer=saver)
def three_steps(topic):
    return publish(draft(fetch(topic).result()).result()).result()

def config(thread):
    return {"configurable": {"thread_id": thread}}
"""

LANGGRAPH_RECORD = (
    LANGGRAPH_SETUP
    + """
n = int(sys.argv[1])
timed_steps.invoke(50, config("warm"))
started = time.perf_counter()
for i in range(n):
    plain_step(i)
plain = time.perf_counter() - started
print((timed_steps.invoke(n, config("run")) - plain) / n)
"""
)

LANGGRAPH_THREE = (
    LANGGRAPH_SETUP
    + """
three_steps.invoke("x", config(str(time.time())))
"""
)


def _run(script: str, *args: str, db: str, check: bool = True, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=dict(os.environ, BENCH_DB=db, **env),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"peer benchmark failed:\n{out.stderr[-2000:]}")
    return out.stdout


def _wall(script: str, *args: str, db: str) -> float:
    started = time.perf_counter()
    _run(script, *args, db=db)
    return time.perf_counter() - started


def _import_ms(module: str, rounds: int) -> float:
    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = statistics.median(wall("pass") for _ in range(rounds))
    return (statistics.median(wall(f"import {module}") for _ in range(rounds)) - bare) * 1000


def measure_dbos(rounds: int, n: int) -> dict[str, float]:
    record, resume, three = [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "dbos.sqlite")
            record.append(float(_run(DBOS_RECORD, str(n), db=db).strip().splitlines()[-1]))
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "dbos.sqlite")
            _run(DBOS_CRASH, "200", db=db, check=False, BENCH_CRASH="1")
            resume.append(_wall(DBOS_RECOVER, str(sum(range(200))), db=db))
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "dbos.sqlite")
            _run(DBOS_THREE, db=db)  # create the database first, as for Kitaru
            three.append(_wall(DBOS_THREE, db=db))
    return {
        "record_normal": statistics.median(record) * 1000,
        "resume_200": statistics.median(resume) * 1000,
        "import": _import_ms("dbos", rounds),
        "three_step_process": statistics.median(three) * 1000,
    }


def measure_langgraph(rounds: int, n: int) -> dict[str, float]:
    record, three = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "lg.sqlite")
            record.append(float(_run(LANGGRAPH_RECORD, str(n), db=db).strip().splitlines()[-1]))
            _run(LANGGRAPH_THREE, db=db)
            three.append(_wall(LANGGRAPH_THREE, db=db))
    return {
        "record_normal": statistics.median(record) * 1000,
        "import": _import_ms("langgraph.func", rounds),
        "three_step_process": statistics.median(three) * 1000,
    }


def measure(rounds: int, n: int) -> dict[str, dict[str, float]]:
    print("measuring DBOS Transact and LangGraph (this takes a few minutes)...", flush=True)
    return {"dbos": measure_dbos(rounds, n), "langgraph": measure_langgraph(rounds, n)}


if __name__ == "__main__":
    print(json.dumps(measure(3, 1000), indent=2))
