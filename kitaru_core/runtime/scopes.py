"""Where a step is in the flow body's tree of tasks: its *path*.

A step is matched to its journal entry on resume by its path, not by when it was
called. The flow body's own steps are ``0``, ``1``, ``2``, ...; a task it creates
(``asyncio.gather``, ``create_task``, a task group, an agent's parallel tool calls) is
named after the coroutine it runs and the count of tasks of that coroutine the body
created before it, ``run:0/``, and that task's steps are ``run:0/0``, ``run:0/1``, ...;
a task it creates in turn is ``run:0/_call_tool:1/``, and so on. A path depends only on
the order in which each task makes its own calls and creates its own tasks, never on
how the tasks interleave, so two agents gathered in one flow line up on resume even
though replayed steps answer at once and the order of arrival changes. Counting tasks
per coroutine keeps helper tasks a library makes in varying numbers (one per streamed
event, say) from shifting the paths of the tasks that take steps.

Tasks created while a step runs (inside a checkpoint's body, a model request, a tool
call) take no index: a replayed step does not run its body, so counting them would
shift every later task's path.

The integer journal *position* stays what it was: the order in which steps were first
recorded, the address that child ids, waits and ``replay --from`` use.
"""

from __future__ import annotations

import contextvars
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitaru_core.runtime.context import ExecutionContext


TASK_PATHS = "task_paths"
"""The execution option set on every execution started since steps have paths. Without
it (an execution recorded before), tasks get no scopes: each step's path is its place in
the order of arrival, which is what its journal's positions were."""


class Scope:
    """One task of a flow body: the prefix of its steps' paths and its own counters."""

    __slots__ = ("ctx", "names", "prefix", "steps", "tasks")

    def __init__(self, ctx: ExecutionContext, prefix: str = "") -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.steps = 0
        self.tasks: dict[str, int] = {}
        self.names: dict[str, int] = {}

    def upcoming_path(self) -> str:
        """The path this task's next step will take (not taken yet)."""
        return f"{self.prefix}{self.steps}"

    def next_path(self) -> str:
        """The path of this task's next step (the caller holds the context's lock)."""
        path = self.upcoming_path()
        self.steps += 1
        return path

    def next_name(self, kind: str) -> str:
        """``llm_1``, ``wait_2``: a name for an unnamed step; in a task, with its path
        (``llm_1@run:0``), so concurrent tasks never take each other's names."""
        count = self.names[kind] = self.names.get(kind, 0) + 1
        return f"{kind}_{count}@{self.prefix[:-1]}" if self.prefix else f"{kind}_{count}"

    def child(self, coroutine: str) -> Scope:
        """The scope of a task running ``coroutine`` that this one creates now."""
        index = self.tasks.get(coroutine, 0)
        self.tasks[coroutine] = index + 1
        return Scope(self.ctx, f"{self.prefix}{coroutine}:{index}/")


_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_]")


def coroutine_name(coro: object) -> str:
    """The name a task is counted under: its coroutine function's, in name characters."""
    return _NOT_IN_NAMES.sub("", getattr(coro, "__name__", "") or "") or "task"


current_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "kitaru_scope", default=None
)
