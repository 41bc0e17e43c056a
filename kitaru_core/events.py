"""What observer hooks receive: one frozen record per event, part of the plugin API.

They are plain data copied out of the engine, so a plugin can keep them, send them
elsewhere or log them, and never holds a row class or a live object of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExecutionStarted:
    exec_id: str
    flow_name: str
    stack: str
    mode: str
    """``start``, ``resume`` or ``retry``."""


@dataclass(frozen=True)
class ExecutionEnded:
    exec_id: str
    flow_name: str
    status: str
    """``completed``, ``failed``, ``cancelled`` or ``waiting``."""


@dataclass(frozen=True)
class StepEnded:
    """A step ran to its end: a checkpoint, an LLM call in a flow body, a wait that got
    its input, or a memory operation (``kind``). Not sent for steps answered from the
    journal."""

    exec_id: str
    name: str
    kind: str
    position: int
    status: str
    """``completed`` or ``failed``."""
    duration: float


@dataclass(frozen=True)
class WaitCreated:
    exec_id: str
    name: str
    question: str | None
    schema: dict[str, Any]
    """The JSON schema of the value the wait expects."""


@dataclass(frozen=True)
class LLMCallEnded:
    """One call through the LLM gateway (no prompt, response or secret in it)."""

    exec_id: str | None
    checkpoint: str | None
    alias: str | None
    model: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency: float
    attempts: int
    error: str | None
