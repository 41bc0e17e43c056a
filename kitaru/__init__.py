"""Kitaru: durable execution for Python agents.

    import kitaru
    from kitaru import flow, checkpoint, KitaruClient

This package only re-exports; the engine lives in ``kitaru_core``.
"""

from kitaru_core import __version__
from kitaru_core.client import KitaruClient
from kitaru_core.diff import diff
from kitaru_core.errors import (
    KitaruBackendError,
    KitaruContextError,
    KitaruDivergenceError,
    KitaruError,
    KitaruExecutionError,
    KitaruStackError,
    KitaruStateError,
    KitaruUsageError,
    KitaruWaitValidationError,
)
from kitaru_core.runtime.checkpoint import checkpoint
from kitaru_core.runtime.flow import FlowHandle, flow
from kitaru_core.runtime.memory import memory
from kitaru_core.runtime.primitives import load, log, save
from kitaru_core.runtime.wait import wait


def __getattr__(name: str) -> object:
    # Imported on first use: plugins need it, flows do not, and pluggy costs import time.
    if name == "hookimpl":
        from kitaru_core.pluginapi import hookimpl

        return hookimpl
    raise AttributeError(f"module 'kitaru' has no attribute {name!r}")


__all__ = [
    "FlowHandle",
    "KitaruBackendError",
    "KitaruClient",
    "KitaruContextError",
    "KitaruDivergenceError",
    "KitaruError",
    "KitaruExecutionError",
    "KitaruStackError",
    "KitaruStateError",
    "KitaruUsageError",
    "KitaruWaitValidationError",
    "__version__",
    "checkpoint",
    "diff",
    "flow",
    "hookimpl",
    "load",
    "log",
    "memory",
    "save",
    "wait",
]
