"""Calling the observer hooks from the engine, without importing pluggy or plugins."""

from __future__ import annotations

import logging
from typing import Any

from kitaru_core.events import (
    ExecutionEnded,
    ExecutionStarted,
    LLMCallEnded,
    StepEnded,
    WaitCreated,
)


class Observers:
    """Calls the observer hooks. Each is a method (a misspelled hook is an error, not
    silence), and one that no plugin implements costs nothing: they run on hot paths.
    A failing observer is logged, never fatal (``KITARU_PLUGINS_STRICT=1``: raised)."""

    def __init__(self, hook: Any = None, *, strict: bool = False) -> None:
        def caller(name: str) -> Any:
            found = getattr(hook, name) if hook is not None else None
            return found if found is not None and found.get_hookimpls() else None

        self._strict = strict
        self._execution_started = caller("kitaru_execution_started")
        self._execution_ended = caller("kitaru_execution_ended")
        self._step_ended = caller("kitaru_step_ended")
        self._wait_created = caller("kitaru_wait_created")
        self._llm_call_ended = caller("kitaru_llm_call_ended")

    def execution_started(self, event: ExecutionStarted) -> None:
        if self._execution_started is not None:
            self._call(self._execution_started, event)

    def execution_ended(self, event: ExecutionEnded) -> None:
        if self._execution_ended is not None:
            self._call(self._execution_ended, event)

    def step_ended(self, event: StepEnded) -> None:
        if self._step_ended is not None:
            self._call(self._step_ended, event)

    def wait_created(self, event: WaitCreated) -> None:
        if self._wait_created is not None:
            self._call(self._wait_created, event)

    def llm_call_ended(self, event: LLMCallEnded) -> None:
        if self._llm_call_ended is not None:
            self._call(self._llm_call_ended, event)

    def _call(self, hook: Any, event: Any) -> None:
        try:
            hook(event=event)
        except Exception as exc:
            logging.getLogger("kitaru").warning("plugin hook %s failed: %s", hook.name, exc)
            if self._strict:
                raise


NO_OBSERVERS = Observers()
"""For runs that nobody observes (tests of the engine alone)."""
