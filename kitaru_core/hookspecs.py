"""The plugin contract: every hook a Kitaru plugin may implement.

A plugin is a module (found through the ``kitaru`` entry-point group) with functions
marked ``@kitaru.hookimpl`` and named after these specifications. Registration hooks
receive a ``register`` callback: the plugin says what it adds, the core decides when to
build it. Every hook is documented in ``docs/plugins.md`` (a test checks that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from kitaru_core.events import (
        ExecutionEnded,
        ExecutionStarted,
        LLMCallEnded,
        StepEnded,
        WaitCreated,
    )
    from kitaru_core.flavors import Flavor

hookspec = pluggy.HookspecMarker("kitaru")

Register = Callable[["Flavor"], None]


@hookspec
def kitaru_register_artifact_stores(register: Register) -> None:
    """Register artifact store flavors: ``register(Flavor(...))`` for each."""


@hookspec
def kitaru_register_secret_providers(register: Register) -> None:
    """Register secret provider flavors."""


@hookspec
def kitaru_register_orchestrators(register: Register) -> None:
    """Register orchestrator flavors."""


@hookspec
def kitaru_register_llm_gateways(register: Register) -> None:
    """Register LLM gateway flavors."""


@hookspec
def kitaru_register_commands(app: Any) -> None:
    """Add commands to the ``kitaru`` CLI: ``app`` is its ``typer.Typer``."""


@hookspec
def kitaru_execution_started(event: ExecutionStarted) -> None:
    """An execution's flow body starts running (``event.mode``: start, resume or retry)."""


@hookspec
def kitaru_execution_ended(event: ExecutionEnded) -> None:
    """A run of an execution ended: ``completed``, ``failed``, ``cancelled`` or ``waiting``."""


@hookspec
def kitaru_step_ended(event: StepEnded) -> None:
    """A step ran to its end (a checkpoint, an LLM call, a wait, a memory operation;
    ``completed`` or ``failed``); not called for steps answered from the journal."""


@hookspec
def kitaru_wait_created(event: WaitCreated) -> None:
    """An execution started waiting for input (``event.schema``: the JSON schema expected)."""


@hookspec
def kitaru_llm_call_ended(event: LLMCallEnded) -> None:
    """An LLM call through the gateway ended (tokens, cost, latency; never a secret)."""
