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
def kitaru_execution_started(exec_id: str, flow_name: str, stack: str, mode: str) -> None:
    """An execution's flow body starts running (``mode``: start, resume or retry)."""


@hookspec
def kitaru_execution_ended(exec_id: str, flow_name: str, status: str) -> None:
    """A run of an execution ended: ``completed``, ``failed``, ``cancelled`` or ``waiting``."""


@hookspec
def kitaru_checkpoint_ended(
    exec_id: str, name: str, position: int, status: str, duration: float
) -> None:
    """A checkpoint body finished (``completed`` or ``failed``); not called on replay."""


@hookspec
def kitaru_wait_created(
    exec_id: str, name: str, question: str | None, schema: dict[str, Any]
) -> None:
    """An execution started waiting for input (``schema``: the JSON schema expected)."""


@hookspec
def kitaru_llm_call_ended(exec_id: str | None, call: Any) -> None:
    """An LLM call through the gateway ended; ``call`` is its record (no secrets)."""
