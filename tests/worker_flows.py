"""Flows for the worker's tests, importable by the worker and runner processes.

Each checkpoint body appends ``exec_id name event time`` to ``$KITARU_TEST_EFFECTS``.
"""

from __future__ import annotations

import os
import signal
import time

import kitaru
from kitaru import checkpoint, flow
from kitaru_core.runtime.context import current_execution


def note(name: str, event: str) -> None:
    path = os.environ.get("KITARU_TEST_EFFECTS")
    if path:
        ctx = current_execution.get()
        line = f"{ctx.exec_id if ctx else '-'} {name} {event} {time.time():.6f}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def notes() -> list[list[str]]:
    path = os.environ.get("KITARU_TEST_EFFECTS", "")
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def _starts(name: str) -> int:
    """How often this execution's step ``name`` has started, this time included."""
    ctx = current_execution.get()
    exec_id = ctx.exec_id if ctx else "-"
    return sum(1 for n in notes() if n[:3] == [exec_id, name, "start"])


@checkpoint
def work(i: int) -> int:
    note(f"work{i}", "start")
    time.sleep(float(os.environ.get("KITARU_TEST_STEP_SLEEP", "0")))
    crash_at = os.environ.get("KITARU_TEST_CRASH_AT")
    if crash_at == f"work{i}" or (crash_at == "each-step-once" and _starts(f"work{i}") == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    note(f"work{i}", "end")
    return i * i


@flow
def three(x: int) -> int:
    return work(0) + work(1) + work(2) + x


@flow(concurrency=4)
def limited(x: int) -> int:
    return work(0) + work(1) + work(2) + x


@flow(key="customer")
def per_customer(customer: str, order: int) -> int:
    work(order)
    kitaru.memory.configure(scope_type="key")
    seen = kitaru.memory.get("orders") or []
    kitaru.memory.set("orders", [*seen, order])
    return order


@flow
def napper(hours: float) -> str:
    work(0)
    kitaru.sleep(hours * 3600)
    work(1)
    return "rested"


@flow
def short_nap() -> str:
    kitaru.sleep(2)
    return "rested"


@flow
def approval(default_given: bool) -> str:
    if default_given:
        answer = kitaru.wait(schema=bool, name="approve", expires_after=600, default=False)
        return f"answer {answer}"
    try:
        kitaru.wait(schema=bool, name="approve", expires_after=600)
    except kitaru.KitaruWaitExpiredError as exc:
        return f"expired {exc.wait}"
    return "answered"


@flow
def report(region: str = "eu") -> str:
    return f"report {region}"
