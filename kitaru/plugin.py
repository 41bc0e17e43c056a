"""Everything a Kitaru plugin imports, and nothing else.

    from kitaru.plugin import Flavor, Register, SecretProvider, StrictConfig, hookimpl

A plugin module sets ``KITARU_PLUGIN_API = kitaru.plugin.PLUGIN_API`` and implements the
hooks of ``docs/plugins.md`` with ``@hookimpl``. This module changes only with
``PLUGIN_API``. Names load on first use, so importing a plugin stays cheap (``kitaru
plugins list`` imports every plugin and none of their SDKs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kitaru_core.pluginapi import PLUGIN_API, hookimpl

if TYPE_CHECKING:
    pass

_ERRORS = "kitaru_core.errors"
_EVENTS = "kitaru_core.events"
_ORCHESTRATION = "kitaru_core.runtime.orchestration"
_EXPORTS = {
    "Flavor": "kitaru_core.flavors",
    "Register": "kitaru_core.hookspecs",
    "StrictConfig": "kitaru_core.components.config",
    "ArtifactStore": "kitaru_core.components.artifact_store",
    "SecretProvider": "kitaru_core.components.secret_provider",
    "SecretNotFoundError": "kitaru_core.components.secret_provider",
    "Orchestrator": "kitaru_core.components.orchestrator",
    "LLMGateway": "kitaru_core.components.llm_gateway",
    "LLMRequest": "kitaru_core.components.llm_gateway",
    "LLMResponse": "kitaru_core.components.llm_gateway",
    "KitaruError": _ERRORS,
    "KitaruBackendError": _ERRORS,
    "KitaruStackError": _ERRORS,
    "KitaruUsageError": _ERRORS,
    "KitaruStateError": _ERRORS,
    "backend_error": _ERRORS,
    "ExecutionStarted": _EVENTS,
    "ExecutionEnded": _EVENTS,
    "StepEnded": _EVENTS,
    "WaitCreated": _EVENTS,
    "LLMCallEnded": _EVENTS,
    # For orchestrators: what they may read of executions and do to them.
    "ExecutionView": _ORCHESTRATION,
    "execution": _ORCHESTRATION,
    "runner_command": _ORCHESTRATION,
    "mark_cancelled": _ORCHESTRATION,
    "claim_for_retry": _ORCHESTRATION,
    "fail_execution": _ORCHESTRATION,
    "wait_for_execution": _ORCHESTRATION,
    "store_id": _ORCHESTRATION,
    "statuses": _ORCHESTRATION,
    # A registered stack by name (the active one by default), its components built on use.
    "get_stack": "kitaru_core.stack_registry",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kitaru.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["PLUGIN_API", "hookimpl", *_EXPORTS]
