"""Flows the orchestrator contract runs (importable by any worker process)."""

from __future__ import annotations

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def greet(name: str) -> str:
    return f"hello {name}"


@flow
def contract_flow(name: str) -> str:
    return greet(name)


@flow
def contract_waiting_flow(name: str) -> str:
    greeting = greet(name)
    approved = kitaru.wait(name="approve", schema=bool)
    return greeting if approved else "refused"


@checkpoint
def small_output() -> str:
    return "fits in the metadata store"


@checkpoint
def large_output() -> str:
    return "x" * 20000  # above the inline limit: goes to the artifact store


@flow
def small_then_large() -> int:
    return len(small_output()) + len(large_output())
