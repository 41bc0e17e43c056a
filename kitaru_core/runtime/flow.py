"""``@flow``: an ordinary function whose executions are durable, and their handles."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from kitaru_core.errors import KitaruExecutionError, KitaruStateError
from kitaru_core.runtime.children import start_child
from kitaru_core.runtime.context import ExecutionContext, current_checkpoint, current_execution
from kitaru_core.runtime.dispatch import hand_off_new, run_when_admitted
from kitaru_core.runtime.engine import Created, create_execution
from kitaru_core.runtime.flow_ref import FlowDefinition, refuse_start_while_importing
from kitaru_core.runtime.replay import create_replay
from kitaru_core.stack import Stack
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import get_store
from kitaru_core.store.records import TERMINAL_STATUSES, ExecutionRecord, Status

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Flow(FlowDefinition[P, R]):
    """A flow as user code starts it: ``run``, ``start`` and ``replay`` (``@flow``
    makes one)."""

    def run(
        self, *args: Any, stack: str | None = None, exec_id: str | None = None, **kwargs: Any
    ) -> FlowHandle[R]:
        """Start an execution on the active stack's orchestrator.

        With the local orchestrator the body runs in this process and this returns
        once the execution has completed, failed or stopped to wait (a queued one
        first waits for its turn). ``exec_id`` makes the start idempotent: an id that
        exists with the same inputs returns that execution, which is not run again.
        """
        parent = _parent()
        if parent is not None and exec_id is None:
            return FlowHandle(
                start_child(parent, self, args, kwargs, stack=stack, background=False)
            )
        target, created = self._create(args, kwargs, stack, exec_id)
        if created.new:
            if created.record.status == Status.QUEUED:
                run_when_admitted(created.record, target)
            else:
                target.orchestrator.start(created.record.id)
        return FlowHandle(created.record.id)

    def start(
        self, *args: Any, stack: str | None = None, exec_id: str | None = None, **kwargs: Any
    ) -> FlowHandle[R]:
        """Start an execution and return at once; the stack's orchestrator runs it
        elsewhere (the local one: in a detached process). A flow over its concurrency
        limit, or with its key busy, is ``queued``: ``kitaru worker`` starts it when
        its turn comes. ``exec_id``: an idempotent start, as for ``run``."""
        parent = _parent()
        if parent is not None and exec_id is None:
            return FlowHandle(start_child(parent, self, args, kwargs, stack=stack, background=True))
        target, created = self._create(args, kwargs, stack, exec_id)
        if created.new:
            hand_off_new(created.record, target)
        return FlowHandle(created.record.id)

    async def arun(
        self, *args: Any, stack: str | None = None, exec_id: str | None = None, **kwargs: Any
    ) -> FlowHandle[R]:
        """``run`` for async code: the execution runs in a worker thread (an async flow
        body in an event loop of its own there), so this event loop goes on meanwhile."""
        import asyncio

        return await asyncio.to_thread(
            functools.partial(self.run, *args, stack=stack, exec_id=exec_id, **kwargs)
        )

    async def astart(
        self, *args: Any, stack: str | None = None, exec_id: str | None = None, **kwargs: Any
    ) -> FlowHandle[R]:
        """``start`` for async code."""
        import asyncio

        return await asyncio.to_thread(
            functools.partial(self.start, *args, stack=stack, exec_id=exec_id, **kwargs)
        )

    def _create(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stack: str | None,
        exec_id: str | None,
    ) -> tuple[Stack, Created]:
        refuse_start_while_importing(self.name)
        target = get_stack(stack or self.stack)
        return target, create_execution(self, args, kwargs, stack=target, exec_id=exec_id)

    def replay(
        self,
        exec_id: str,
        *,
        from_: str | int,
        overrides: dict[str, Any] | None = None,
        **flow_inputs: Any,
    ) -> FlowHandle[R]:
        """A new execution that reuses ``exec_id``'s recorded outputs before checkpoint
        ``from_`` and runs the rest live. ``overrides`` maps ``"checkpoint.NAME"`` to a
        value used instead of that checkpoint's recorded output; ``flow_inputs``
        replace the source's inputs."""
        refuse_start_while_importing(self.name)
        source = get_store().require_execution(exec_id)
        return FlowHandle(
            start_replay(source, self, from_=from_, overrides=overrides, flow_inputs=flow_inputs)
        )


def _parent() -> ExecutionContext | None:
    """The execution whose flow body is calling (its flow body, not one of its
    checkpoints): a flow started there is that execution's child."""
    ctx = current_execution.get()
    return ctx if ctx is not None and current_checkpoint.get() is None else None


def start_replay(
    source: ExecutionRecord,
    flow: FlowDefinition[Any, Any],
    *,
    from_: str | int,
    overrides: dict[str, Any] | None,
    flow_inputs: dict[str, Any],
) -> str:
    """Create the replay of ``source`` and start it on the source's stack; its id."""
    record = create_replay(
        source, from_=from_, overrides=overrides, flow_inputs=flow_inputs, flow=flow
    )
    get_stack(record.stack).orchestrator.start(record.id)
    return record.id


class ExecutionHandle(Protocol[R_co]):
    """A started execution, wherever it is read from: ``FlowHandle`` (the store) and
    ``kitaru_core.remote.RemoteHandle`` (a server) behave the same."""

    exec_id: str

    @property
    def status(self) -> str:
        """Read fresh on every access."""
        ...

    def wait(self, timeout: float | None = None) -> R_co:
        """Block until the execution ends (a waiting or sleeping one is not ended):
        its result; ``KitaruExecutionError`` if it failed or was cancelled;
        ``TimeoutError`` after ``timeout`` seconds."""
        ...

    def get(self) -> R_co:
        """The result now; ``KitaruStateError`` if the execution has not ended."""
        ...


class FlowHandle(Generic[R]):
    """A started execution. ``status`` is read fresh from the store on every access."""

    def __init__(self, exec_id: str) -> None:
        self.exec_id = exec_id

    def __repr__(self) -> str:
        return f"<FlowHandle {self.exec_id} {self.status}>"

    def _record(self) -> ExecutionRecord:
        return get_store().require_execution(self.exec_id)

    @property
    def status(self) -> str:
        return self._record().status

    def wait(self, timeout: float | None = None) -> R:
        """Block until the execution ends; its result, or ``KitaruExecutionError``."""
        record = poll_status(self.exec_id, self._record, TERMINAL_STATUSES, timeout)
        return self._result(record)

    def get(self) -> R:
        """The result now; ``KitaruStateError`` if the execution has not ended."""
        record = self._record()
        refuse_unfinished(self.exec_id, record.status)
        return self._result(record)

    def _result(self, record: ExecutionRecord) -> R:
        if record.status == Status.COMPLETED:
            return load_result(record)
        raise execution_error(record)


def load_result(record: ExecutionRecord) -> Any:
    """A completed execution's result, read from its own stack's artifact store."""
    artifact = get_store().get_artifact(record.result_artifact_id or "")
    if artifact is None:
        raise KitaruStateError(f"execution {record.id} has no stored result")
    return get_stack(record.stack).artifacts.read(artifact)


class _HasStatus(Protocol):
    @property
    def status(self) -> str: ...


Found = TypeVar("Found", bound=_HasStatus)


def poll_status(
    exec_id: str,
    read: Callable[[], Found],
    statuses: frozenset[str],
    timeout: float | None,
    *,
    first_delay: float = 0.01,
    ceiling: float = 0.5,
) -> Found:
    """``read()`` again, with growing pauses, until what it returns has one of
    ``statuses`` (what both handles' ``wait`` does); ``TimeoutError`` after
    ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = first_delay
    while True:
        found = read()
        if found.status in statuses:
            return found
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"execution {exec_id} is still {found.status} after {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, ceiling)


def refuse_unfinished(exec_id: str, status: str) -> None:
    """What both handles' ``get`` raises before the execution ended."""
    if status not in TERMINAL_STATUSES:
        raise KitaruStateError(
            f"execution {exec_id} is {status}, not finished; use .wait() to block until it is"
        )


def execution_error(record: ExecutionRecord) -> KitaruExecutionError:
    return ended_without_result(record.id, record.flow_name, record.status, record.error)


def ended_without_result(
    exec_id: str, flow_name: str, status: str, error: dict[str, Any] | None
) -> KitaruExecutionError:
    """What ``wait()`` and ``get()`` raise for an execution that failed or was cancelled
    (the local handle and the one over HTTP alike)."""
    if status == Status.CANCELLED:
        return KitaruExecutionError(
            f"execution {exec_id} was cancelled", exec_id=exec_id, status=Status.CANCELLED
        )
    error = error or {}
    message = f"execution {exec_id} of flow {flow_name!r} failed"
    if error:
        message += f": {error.get('type', 'error').rsplit('.', 1)[-1]}: {error.get('message')}"
    return KitaruExecutionError(
        message,
        exec_id=exec_id,
        status=status,
        hint=f"fix the cause, then `kitaru executions retry {exec_id}` continues it "
        "from its last completed checkpoint",
    )


@overload
def flow(func: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(
    *,
    retries: int = 0,
    cache: bool = True,
    stack: str | None = None,
    name: str | None = None,
    concurrency: int | None = None,
    key: str | None = None,
    settings: dict[str, Any] | None = None,
    max_cost_usd: float | None = None,
    max_llm_calls: int | None = None,
    version: str | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(
    func: Callable[P, R] | None = None,
    /,
    *,
    retries: int = 0,
    cache: bool = True,
    stack: str | None = None,
    name: str | None = None,
    concurrency: int | None = None,
    key: str | None = None,
    settings: dict[str, Any] | None = None,
    max_cost_usd: float | None = None,
    max_llm_calls: int | None = None,
    version: str | None = None,
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Make a function a durable flow; start executions with ``.run()`` or ``.start()``.

    ``retries`` is the default number of retries of the flow's checkpoints.
    ``cache``: a retry of a failed execution reuses the steps that completed (the
    default); with ``False`` it does their work again (answers to waits stay). A resume
    after a crash or a wait always continues from the journal.
    ``concurrency``: at most this many executions of the flow run at once; the others
    are ``queued`` in start order. ``key``: the name of a parameter; executions with
    the same value of it run one at a time, in start order, and share ``key`` memory.
    ``settings``: per-orchestrator settings of its executions (``{"kubernetes": {...}}``).
    ``max_cost_usd``, ``max_llm_calls``: the budget of each execution; an LLM call over it
    raises ``KitaruBudgetExceededError`` in the flow, which may catch it.
    ``version``: the code version its executions record (default: ``KITARU_CODE_VERSION``,
    else a digest of the flow's source files); a worker continues only executions of a
    version it has.
    """

    def wrap(f: Callable[P, R]) -> Flow[P, R]:
        return Flow(
            f,
            retries=retries,
            cache=cache,
            stack=stack,
            name=name,
            concurrency=concurrency,
            key=key,
            settings=settings,
            max_cost_usd=max_cost_usd,
            max_llm_calls=max_llm_calls,
            version=version,
        )

    return wrap(func) if func is not None else wrap
