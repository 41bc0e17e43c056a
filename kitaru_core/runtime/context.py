"""What the running flow body and its steps can see of their execution.

A run's ``ExecutionContext`` is the only source of its stack, artifact store and
metadata store: nothing inside a run reads the process's active stack.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kitaru_core.artifacts import Artifacts
from kitaru_core.errors import (
    KitaruBackendError,
    KitaruContextError,
    KitaruDivergenceError,
    KitaruUsageError,
)
from kitaru_core.events import NO_OBSERVERS, Observers
from kitaru_core.runtime.journal import JournalReader, Recorded
from kitaru_core.runtime.scopes import Scope, coroutine_name, current_scope
from kitaru_core.runtime.step import HELD, Step
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import ArtifactRecord

if TYPE_CHECKING:
    import asyncio

    from kitaru_core.stack import Stack

T = TypeVar("T")


def _as_recorded(value: Any) -> Any:
    return value


class ExecutionCancelled(BaseException):
    """Unwinds a flow body whose execution was cancelled (not an ``Exception``, so user
    code's ``except Exception`` does not swallow it)."""


STOP_REQUESTED = threading.Event()
"""Set when this process was asked to stop (a runner's SIGTERM: a pod being deleted,
evicted or drained): every execution it runs stops at its next step boundary."""


class ExecutionStopped(BaseException):
    """Unwinds a flow body whose process was asked to stop: the execution is left
    running with no owner, for a worker to recover elsewhere (not an ``Exception``,
    so user code's ``except Exception`` does not swallow it)."""


class DryRunEnded(BaseException):
    """Unwinds a flow body replayed without running anything (``kitaru executions
    upgrade --dry-run``) at the first step its journal does not hold: the replay
    matched everything the execution had recorded up to there."""

    def __init__(self, step: Step) -> None:
        super().__init__(step.name)
        self.step = step


class Suspended(BaseException):
    """Unwinds a flow body that stops until something outside it happens: input for a
    wait, or a timer. The execution gets ``status``; ``wake_at`` is when the worker
    should resume it by itself (a timer, a wait's deadline), if ever. (Not an
    ``Exception``: user code's ``except Exception`` must not swallow it.)"""

    status: str = "waiting"

    def __init__(self, name: str, wake_at: float | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.wake_at = wake_at


@dataclass
class CheckpointFrame:
    """The checkpoint body that is running in this context."""

    name: str
    position: int
    metadata: dict[str, Any] = field(default_factory=dict)
    saved: list[ArtifactRecord] = field(default_factory=list)
    on_loop: bool = False
    """The body is ``async def``, awaited in the flow's event loop: uploads wait for the
    checkpoint's completion, which runs them in a thread."""
    uploads: list[Callable[[], ArtifactRecord]] = field(default_factory=list)
    """``kitaru.save()`` values whose bytes go to the artifact store at completion."""

    def all_saved(self) -> list[ArtifactRecord]:
        """Everything saved, the deferred uploads done now (in the caller's thread)."""
        return [*self.saved, *(upload() for upload in self.uploads)]


class ExecutionContext:
    def __init__(
        self,
        *,
        exec_id: str,
        flow_name: str,
        store: MetadataStore,
        journal: JournalReader,
        default_retries: int,
        cancelled: threading.Event,
        interactive: bool = False,
        observers: Observers = NO_OBSERVERS,
        stack: Stack,
        key: str | None = None,
        budget: dict[str, Any] | None = None,
        owner: str | None = None,
        task_paths: bool = True,
    ) -> None:
        self.exec_id = exec_id
        self.owner = owner
        """The lease this run holds: every journal entry it writes is fenced by it."""
        self.flow_name = flow_name
        self.store = store
        self.journal = journal
        self.default_retries = default_retries
        self.cancelled = cancelled
        self.stack = stack
        """The stack the execution runs on (its gateway, secrets, artifact store)."""
        self.key = key
        """The value of the flow's key argument (``@flow(key=...)``), if it has one."""
        self.budget = budget or None
        """The flow's ``max_cost_usd`` and ``max_llm_calls``, checked before each LLM call."""
        self.artifacts: Artifacts = stack.artifacts
        self.interactive = interactive
        """Whether a wait may ask at this process's terminal."""
        self.started_at = time.time()
        self.observers = observers
        """Plugins' observer hooks."""
        self.memory_scope: tuple[str, str | None] | None = None
        """What ``kitaru.memory.configure`` chose in this run (default: the flow's scope)."""
        self._wait_names: set[str] = set()
        self.lock = threading.Lock()
        self.root = Scope(self)
        """The flow body's own task; tasks it creates get child scopes (``scopes.py``)
        when ``task_paths`` is on."""
        self.task_paths = task_paths
        self._arrivals = 0
        self._next_new = journal.last_position + 1
        self._executor: ThreadPoolExecutor | None = None
        self.submitted: list[Future[Any]] = []
        self.is_async = False
        """Whether the flow body is ``async def`` (then steps called in it are awaited)."""
        self.dry_run = False
        """The body is replayed against the journal and nothing runs: the first step the
        journal does not answer ends it (``DryRunEnded``)."""

    def _scope(self) -> Scope:
        scope = current_scope.get()
        return scope if scope is not None and scope.ctx is self else self.root

    def open_step(self, name: str, kind: str) -> Step:
        """A step of this execution, addressed now (when it is called): its path in the
        tree of tasks, the entry an earlier run recorded there, and its position (that
        entry's, or the next free one)."""
        scope = self._scope()
        with self.lock:
            path = scope.next_path()
            arrival = self._arrivals
            self._arrivals += 1
        found = self.journal.find(path, arrival)
        if found is not None:
            return Step(self, name, kind, found[0].position, path, found)
        return Step(self, name, kind, self._new_position(arrival), path)

    def peek_step(self) -> Recorded | None:
        """The entry an earlier run recorded where this task's next step would be,
        without taking that place (``kitaru.patched``)."""
        scope = self._scope()
        with self.lock:
            path = scope.upcoming_path()
            arrival = self._arrivals
        return self.journal.peek(path, arrival)

    def reached_end(self, step: Step) -> None:
        """In a dry run, ``step`` is one the journal does not answer: the replay ends."""
        raise DryRunEnded(step)

    def _new_position(self, arrival: int) -> int:
        """A position for a step no earlier run recorded: its place in the order of
        arrival when that is free (so a flow body's steps keep the positions of their
        calls), else the next one after every position taken."""
        if arrival <= self.journal.last_position and self.journal.get(arrival) is None:
            return arrival  # a gap: no other step arrives here in this run
        with self.lock:
            position = self._next_new = max(self._next_new, arrival)
            self._next_new += 1
            return position

    def answer(self, step: Step) -> ArtifactRecord | None:
        """The output record of the completed entry an earlier run left for ``step``,
        if there is one, after checking that the entry is for a step of its name."""
        found = step.found
        if found is not None and found[0].status in HELD and found[0].name != step.name:
            entry = found[0]  # a wait or timer reached before: a promise to keep
            raise KitaruDivergenceError(
                exec_id=self.exec_id, position=entry.position, recorded=entry.name, called=step.name
            )
        if found is None or found[0].status != "completed":
            if self.dry_run:
                self.reached_end(step)
            return None
        entry, output = found
        if entry.name != step.name:
            raise KitaruDivergenceError(
                exec_id=self.exec_id, position=entry.position, recorded=entry.name, called=step.name
            )
        if output is None:
            raise KitaruBackendError(
                f"journal entry {entry.name!r} at position {entry.position} of execution "
                f"{self.exec_id} names artifact {entry.output_artifact_id}, which the "
                "metadata store does not hold"
            )
        return output

    def step(
        self,
        name: str,
        kind: str,
        run: Callable[[Step], T],
        *,
        load: Callable[[Any], T] | None = _as_recorded,
    ) -> T:
        """Run one journaled step (see ``step.py``): answer from the journal when an
        earlier run completed it (``load`` turns the recorded value into the result;
        None: the step returns None and its output is not even read), else check for
        cancellation and ``run`` it; ``run`` records it."""
        step = self.open_step(name, kind)
        recorded = self.answer(step)
        if recorded is not None:  # (the hot path of a replay)
            return None if load is None else load(self.artifacts.read(recorded))  # type: ignore[return-value]
        self.check_cancelled()
        return run(step)

    def astep(
        self,
        name: str,
        kind: str,
        run: Callable[[Step], T],
        *,
        load: Callable[[Any], T] | None = _as_recorded,
    ) -> Awaitable[T]:
        """The awaitable twin of ``step``, for async flows: the step is addressed now,
        when it is called (so ``asyncio.gather`` of steps lines up on resume in call
        order); ``run``, synchronous code, runs in a thread when it is awaited."""
        import asyncio  # only async flows pay for importing it

        step = self.open_step(name, kind)
        recorded = self.answer(step)

        async def awaited() -> T:
            if recorded is not None:
                return None if load is None else load(self.artifacts.read(recorded))  # type: ignore[return-value]
            self.check_cancelled()
            return await asyncio.to_thread(run, step)

        return awaited()

    def scope_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give every task the flow body creates in ``loop`` (outside a step) a scope of
        its own, a child of its creator's (``scopes.py``)."""
        import asyncio

        def task_factory(
            loop: asyncio.AbstractEventLoop,
            coro: Coroutine[Any, Any, Any],
            context: contextvars.Context | None = None,
            **kwargs: Any,
        ) -> asyncio.Task[Any]:
            # A copy, even of a context handed in: the new scope is this task's alone.
            context = contextvars.copy_context() if context is None else context.copy()
            if context.get(current_execution) is self and context.get(current_checkpoint) is None:
                parent = context.get(current_scope)
                if parent is None or parent.ctx is not self:
                    parent = self.root
                with self.lock:
                    scope = parent.child(coroutine_name(coro))
                context.run(current_scope.set, scope)
            return asyncio.Task(coro, loop=loop, context=context, **kwargs)

        loop.set_task_factory(task_factory)  # type: ignore[arg-type]

    async def scoped(self, body: Coroutine[Any, Any, T]) -> T:
        """Await ``body`` (an async flow body, or an agent run in a sync flow's own
        loop) with the running loop's tasks given scopes, unless the execution was
        started before steps had paths (then paths follow arrival)."""
        if self.task_paths:
            import asyncio

            self.scope_tasks(asyncio.get_running_loop())
        return await body

    def in_async_body(self) -> bool:
        """Whether a step called now is called from the async flow body's event loop."""
        if not self.is_async:
            return False
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def next_name(self, kind: str) -> str:
        """``wait_1``, ``wait_2``, ``llm_1``, ``sleep_1``, ...: stable names for unnamed
        steps of one kind, in call order (in a task of the body: ``llm_1@run:0``)."""
        scope = self._scope()
        with self.lock:
            return scope.next_name(kind)

    def claim_wait_name(self, name: str) -> None:
        with self.lock:
            if name in self._wait_names:
                raise KitaruUsageError(
                    f"wait name {name!r} is used twice in one execution; give each "
                    "kitaru.wait() its own name"
                )
            self._wait_names.add(name)

    def check_cancelled(self) -> None:
        """Before a step runs: stop here if the execution was cancelled or this
        process was asked to stop."""
        if self.cancelled.is_set():
            raise ExecutionCancelled()
        if STOP_REQUESTED.is_set():
            raise ExecutionStopped()

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self.lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=16, thread_name_prefix=f"kitaru-{self.exec_id[:8]}"
                )
            return self._executor

    def drain(self) -> None:
        """Wait for every submitted checkpoint; re-raise the first failure nobody saw."""
        wait(self.submitted)
        for future in self.submitted:
            # Future.exception, not the override: draining is not the user looking.
            exc = Future.exception(future, 0)
            if exc is not None and not getattr(future, "observed", False):
                raise exc

    def settle(self) -> None:
        """However the body ended: drop submitted checkpoints that have not started and
        wait for those that run, so none records after the execution's end is recorded
        (or after its lease is released to a ``retry``)."""
        for future in self.submitted:
            future.cancel()
        wait(self.submitted)
        if self._executor is not None:
            self._executor.shutdown(wait=True)


current_execution: ContextVar[ExecutionContext | None] = ContextVar(
    "kitaru_execution", default=None
)
current_checkpoint: ContextVar[CheckpointFrame | None] = ContextVar(
    "kitaru_checkpoint", default=None
)


def require_flow(what: str) -> ExecutionContext:
    ctx = current_execution.get()
    if ctx is None:
        raise KitaruContextError(
            f"{what} was called outside a flow; call it from a function decorated with "
            "@flow, started with .run()"
        )
    return ctx


def require_checkpoint(what: str) -> CheckpointFrame:
    frame = current_checkpoint.get()
    if frame is None:
        raise KitaruContextError(f"{what} can only be called inside a @checkpoint function")
    return frame
