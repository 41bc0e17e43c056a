"""What a flow is: its function, name, options and import reference.

This is all the engine needs to run an execution by id; how a flow is started from
user code (``run``, ``replay``) is ``flow.py``, one layer up. Defining a flow registers
it by reference, so a process that defined it runs its executions without importing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime.flow_ref import flow_ref_for, import_reference
from kitaru_core.untrusted import validate_name

P = ParamSpec("P")
R = TypeVar("R")

registry: dict[str, FlowDefinition[Any, Any]] = {}
"""Flows by reference, filled as they are defined."""


class FlowDefinition(Generic[P, R]):
    def __init__(
        self,
        func: Callable[P, R],
        *,
        retries: int = 0,
        cache: bool = True,
        stack: str | None = None,
        name: str | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.func = func
        self.name = validate_name("flow name", name or func.__name__)
        self.retries = retries
        self.cache = cache
        self.stack = stack
        self.ref = flow_ref_for(func)
        functools.update_wrapper(self, func)
        registry[self.ref] = self

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    def __repr__(self) -> str:
        return f"<flow {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        raise KitaruUsageError(
            f"flow {self.name!r} was called directly; start an execution with "
            f"{self.name}.run(...), which returns a handle (.wait() gives the result)"
        )


def resolve_flow(ref: str, source_root: str | None = None) -> FlowDefinition[Any, Any]:
    """The flow recorded as ``ref``: already defined in this process, or imported."""
    if ref in registry:
        return registry[ref]
    found = import_reference(ref, source_root)
    if not isinstance(found, FlowDefinition):
        raise KitaruUsageError(f"{ref!r} is not a @flow (it is {type(found).__name__})")
    return found
