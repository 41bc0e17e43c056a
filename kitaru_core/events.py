"""What observer hooks receive, one immutable record per event (part of the plugin
API), and how the engine delivers them.

The records are plain data copied out of the engine (named tuples: immutable, and
cheap to define in a module every flow process imports), so a plugin can keep them,
send them elsewhere or log them, and never holds a row class or a live object of the
store. ``Observers`` calls each hook as a method, and costs nothing for a hook no
plugin implements: they run on hot paths.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple


class ExecutionStarted(NamedTuple):
    exec_id: str
    flow_name: str
    stack: str
    mode: str
    """``start``, ``resume`` or ``retry``."""


class ExecutionEnded(NamedTuple):
    exec_id: str
    flow_name: str
    status: str
    """``completed``, ``failed``, ``cancelled`` or ``waiting``."""


class StepEnded(NamedTuple):
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


class WaitCreated(NamedTuple):
    exec_id: str
    name: str
    question: str | None
    schema: dict[str, Any]
    """The JSON schema of the value the wait expects."""


class LLMCallEnded(NamedTuple):
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


class Observers:
    """Calls the observer hooks. Each is a method (a misspelled hook is an error, not
    silence), and one that no plugin implements costs nothing: they run on hot paths.
    A failing observer is logged, never fatal (``KITARU_PLUGINS_STRICT=1``: raised)."""

    def __init__(self, hook: Any = None, *, strict: bool = False) -> None:
        def caller(name: str) -> Any:
            found = getattr(hook, name) if hook is not None else None
            return found if found is not None and found.get_hookimpls() else None

        self._strict = strict
        self._step_ended = caller("kitaru_step_ended")
        self.observes_steps = self._step_ended is not None
        """Whether any plugin hears of steps (checked before an event is even built)."""
        self._execution_started = caller("kitaru_execution_started")
        self._execution_ended = caller("kitaru_execution_ended")
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
