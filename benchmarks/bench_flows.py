"""Flows the benchmarks run (importable by the worker processes they start)."""

from __future__ import annotations

import os
import signal
import time

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def step(i: int) -> dict[str, int]:
    return {"i": i}


def plain_step(i: int) -> dict[str, int]:
    return {"i": i}


@flow
def timed_steps(n: int) -> float:
    """Runs ``n`` checkpoints and returns how long the calls took inside the body."""
    started = time.perf_counter()
    for i in range(n):
        step(i)
    return time.perf_counter() - started


@flow
def crash_after(n: int) -> int:
    """``n`` checkpoints, then the process dies before the result is recorded."""
    total = sum(step(i)["i"] for i in range(n))
    if os.environ.get("KITARU_BENCH_CRASH") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return total


@checkpoint
def fetch(topic: str) -> str:
    return f"notes on {topic}"


@checkpoint
def draft(notes: str) -> str:
    return notes.upper()


@checkpoint
def publish(text: str) -> int:
    return len(text)


@flow
def three_steps(topic: str) -> int:
    return publish(draft(fetch(topic)))


@flow
def llm_steps(topic: str) -> str:
    """Three LLM calls, answered by KITARU_LLM_MOCK_RESPONSE: the process imports no litellm."""
    idea = kitaru.llm(f"An idea about {topic}", model="openai/gpt-4o-mini")
    outline = kitaru.llm(f"Outline: {idea}", model="openai/gpt-4o-mini")
    return kitaru.llm(f"Write: {outline}", model="openai/gpt-4o-mini")


@flow(concurrency=64)
def queued_three(topic: str) -> int:
    """The three-checkpoint flow, through a queue (the limit does not bind here)."""
    return publish(draft(fetch(topic)))


@flow
def nap(seconds: float) -> str:
    kitaru.sleep(seconds)
    return "rested"


@checkpoint
def record_decision(ok: bool) -> str:
    return "approved" if ok else "rejected"


@flow
def approve(n: int) -> str:
    """Waits for a person, then records the decision (the HTTP input benchmark)."""
    ok = kitaru.wait(schema=bool, name="ok", question=f"Approve {n}?")
    return record_decision(ok)


@checkpoint(name="step")
async def astep(i: int) -> dict[str, int]:
    return {"i": i}


async def aplain_step(i: int) -> dict[str, int]:
    return {"i": i}


async def aplain_steps(n: int) -> float:
    """``n`` plain awaited calls: what ``atimed_steps`` costs without Kitaru."""
    started = time.perf_counter()
    for i in range(n):
        await aplain_step(i)
    return time.perf_counter() - started


@flow
async def atimed_steps(n: int) -> float:
    """``timed_steps`` as an async flow of async checkpoints."""
    started = time.perf_counter()
    for i in range(n):
        await astep(i)
    return time.perf_counter() - started
