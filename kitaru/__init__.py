"""Kitaru: durable execution for Python agents.

    import kitaru
    from kitaru import flow, checkpoint, KitaruClient

This package only re-exports; the engine lives in ``kitaru_core``. Names are imported
on first use (PEP 562), so a plugin that only needs ``kitaru.hookimpl`` does not load
the runtime, and ``import kitaru`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kitaru_core import __version__

if TYPE_CHECKING:
    from kitaru_core.client import KitaruClient
    from kitaru_core.diff import diff
    from kitaru_core.errors import (
        KitaruBackendError,
        KitaruBudgetExceededError,
        KitaruContextError,
        KitaruDispatchError,
        KitaruDivergenceError,
        KitaruError,
        KitaruExecutionError,
        KitaruStackError,
        KitaruStateError,
        KitaruUsageError,
        KitaruWaitExpiredError,
        KitaruWaitValidationError,
    )
    from kitaru_core.pluginapi import hookimpl
    from kitaru_core.runtime.checkpoint import checkpoint
    from kitaru_core.runtime.flow import FlowHandle, flow
    from kitaru_core.runtime.llm import allm, llm
    from kitaru_core.runtime.memory import memory
    from kitaru_core.runtime.patches import deprecate_patch, patched
    from kitaru_core.runtime.primitives import aload, load, log, save
    from kitaru_core.runtime.timers import asleep, sleep, sleep_until
    from kitaru_core.runtime.wait import ainput, wait

_ERRORS = "kitaru_core.errors"
_EXPORTS = {
    "KitaruClient": "kitaru_core.client",
    "diff": "kitaru_core.diff",
    "KitaruBackendError": _ERRORS,
    "KitaruBudgetExceededError": _ERRORS,
    "KitaruContextError": _ERRORS,
    "KitaruDispatchError": _ERRORS,
    "KitaruDivergenceError": _ERRORS,
    "KitaruError": _ERRORS,
    "KitaruExecutionError": _ERRORS,
    "KitaruStackError": _ERRORS,
    "KitaruStateError": _ERRORS,
    "KitaruUsageError": _ERRORS,
    "KitaruWaitExpiredError": _ERRORS,
    "KitaruWaitValidationError": _ERRORS,
    "hookimpl": "kitaru_core.pluginapi",
    "checkpoint": "kitaru_core.runtime.checkpoint",
    "flow": "kitaru_core.runtime.flow",
    "FlowHandle": "kitaru_core.runtime.flow",
    "llm": "kitaru_core.runtime.llm",
    "allm": "kitaru_core.runtime.llm",
    "memory": "kitaru_core.runtime.memory",
    "patched": "kitaru_core.runtime.patches",
    "deprecate_patch": "kitaru_core.runtime.patches",
    "load": "kitaru_core.runtime.primitives",
    "aload": "kitaru_core.runtime.primitives",
    "log": "kitaru_core.runtime.primitives",
    "save": "kitaru_core.runtime.primitives",
    "wait": "kitaru_core.runtime.wait",
    "ainput": "kitaru_core.runtime.wait",
    "sleep": "kitaru_core.runtime.timers",
    "asleep": "kitaru_core.runtime.timers",
    "sleep_until": "kitaru_core.runtime.timers",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kitaru' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "FlowHandle",
    "KitaruBackendError",
    "KitaruBudgetExceededError",
    "KitaruClient",
    "KitaruContextError",
    "KitaruDispatchError",
    "KitaruDivergenceError",
    "KitaruError",
    "KitaruExecutionError",
    "KitaruStackError",
    "KitaruStateError",
    "KitaruUsageError",
    "KitaruWaitExpiredError",
    "KitaruWaitValidationError",
    "__version__",
    "ainput",
    "allm",
    "aload",
    "asleep",
    "checkpoint",
    "deprecate_patch",
    "diff",
    "flow",
    "hookimpl",
    "llm",
    "load",
    "log",
    "memory",
    "patched",
    "save",
    "sleep",
    "sleep_until",
    "wait",
]
