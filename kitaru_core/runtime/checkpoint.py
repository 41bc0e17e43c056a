"""``@checkpoint``: a function whose completed result is recorded and never recomputed.

Each call in a flow body is one journaled step (``step.py``): answered from the journal
when an earlier run completed it, else the body runs (with its retries) and its output
is recorded before the value is returned to the flow body.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import reprlib
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from kitaru_core.errors import KitaruContextError, KitaruError
from kitaru_core.runtime.context import (
    CheckpointFrame,
    ExecutionContext,
    current_checkpoint,
    require_flow,
)
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.step import Step
from kitaru_core.runtime.tracing import set_attributes, span
from kitaru_core.untrusted import validate_name

if TYPE_CHECKING:
    from kitaru_core.artifacts import Prepared

P = ParamSpec("P")
R = TypeVar("R")


class CheckpointFuture(Future[R]):
    """A submitted checkpoint's result; remembers whether the flow body looked at it."""

    observed = False

    def result(self, timeout: float | None = None) -> R:
        self.observed = True
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.observed = True
        return super().exception(timeout)


class Checkpoint(Generic[P, R]):
    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        retries: int | None = None,
        retry_delay: float = 0.0,
        type: str | None = None,
    ) -> None:
        if retries is not None and retries < 0:
            raise ValueError("retries must be 0 or more")
        self.func = func
        self.name = validate_name("checkpoint name", name or func.__name__)
        self.retries = retries
        self.retry_delay = retry_delay
        self.type = type or "output"
        self.is_async = inspect.iscoroutinefunction(func)
        self._parameters: list[str] | None = None
        """The body's parameter names in order, read on first use."""
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"<checkpoint {self.name}>"

    def _context(self) -> ExecutionContext:
        ctx = require_flow(f"checkpoint {self.name!r}")
        outer = current_checkpoint.get()
        if outer is not None:
            raise KitaruContextError(
                f"checkpoint {self.name!r} was called inside checkpoint {outer.name!r}; "
                "checkpoints cannot nest: call it from the flow body, or make it a plain "
                "function"
            )
        return ctx

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        ctx = self._context()
        if self.is_async:  # a coroutine to await; its position is taken now
            return self._awaitable(ctx, args, kwargs)  # type: ignore[return-value]
        if ctx.in_async_body():  # a sync checkpoint in an async flow: awaited, in a thread
            return ctx.astep(self.name, "checkpoint", lambda s: self._run(s, args, kwargs))  # type: ignore[return-value]
        return ctx.step(self.name, "checkpoint", lambda s: self._run(s, args, kwargs))

    def _awaitable(
        self, ctx: ExecutionContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        step = ctx.open_step(self.name, "checkpoint")
        recorded = step.recorded_output()

        async def awaited() -> Any:
            if recorded is not None:
                return ctx.artifacts.read(recorded)
            ctx.check_cancelled()
            return await self._arun(step, args, kwargs)

        return awaited()

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> CheckpointFuture[R]:
        """Run concurrently; the journal position is taken now, in program order."""
        ctx = self._context()
        step = ctx.open_step(self.name, "checkpoint")
        future: CheckpointFuture[R] = CheckpointFuture()
        recorded = step.recorded_output()
        if recorded is not None:
            future.set_result(ctx.artifacts.read(recorded))
            return future
        run_in_context = contextvars.copy_context().run
        run = self._run_async_body if self.is_async else self._run

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                ctx.check_cancelled()
                future.set_result(run_in_context(run, step, args, kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        ctx.submitted.append(future)
        ctx.executor.submit(work)
        return future

    def map(self, *iterables: Iterable[Any]) -> list[CheckpointFuture[R]]:
        """``submit`` once per item (or per tuple of items, like the builtin ``map``)."""
        return [self.submit(*items) for items in zip(*iterables, strict=False)]  # type: ignore[call-arg]

    def _run(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Run the body (with its retries), then record its output as the step's."""
        step.started_at = time.time()  # a submitted step may have queued since its call
        with span(f"kitaru.checkpoint {self.name}", {"kitaru.position": step.position}) as current:
            inputs = self._preview(args, kwargs) if args or kwargs else None
            attempt = 0
            while True:
                attempt += 1
                frame = CheckpointFrame(self.name, step.position)
                if inputs is not None:
                    frame.metadata[INPUTS] = inputs
                token = current_checkpoint.set(frame)
                try:
                    output = self.func(*args, **kwargs)
                    break
                except Exception as exc:
                    self._attempt_failed(step, frame, attempt, exc)
                    if self.retry_delay:
                        time.sleep(self.retry_delay)
                finally:
                    current_checkpoint.reset(token)
            return self._completed(step, frame, attempt, output, current)

    async def _arun(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """``_run`` for an ``async def`` body: awaited in the flow's event loop."""
        import asyncio  # only async flows pay for importing it

        step.started_at = time.time()
        with span(f"kitaru.checkpoint {self.name}", {"kitaru.position": step.position}) as current:
            inputs = self._preview(args, kwargs) if args or kwargs else None
            attempt = 0
            while True:
                attempt += 1
                frame = CheckpointFrame(self.name, step.position, on_loop=True)
                if inputs is not None:
                    frame.metadata[INPUTS] = inputs
                token = current_checkpoint.set(frame)
                try:
                    output = await self.func(*args, **kwargs)  # type: ignore[misc]
                    break
                except Exception as exc:
                    self._attempt_failed(step, frame, attempt, exc)
                    if self.retry_delay:
                        await asyncio.sleep(self.retry_delay)
                finally:
                    current_checkpoint.reset(token)
            return await self._acompleted(step, frame, attempt, output, current)

    async def _acompleted(
        self, step: Step, frame: CheckpointFrame, attempt: int, output: R, current: Any
    ) -> R:
        """``_completed`` for an async body. An output (or a ``kitaru.save()`` value)
        that goes to the artifact store is uploaded and committed in a thread, so
        checkpoints gathered beside this one go on meanwhile; a small one (a row only)
        is recorded here, where a thread would cost more than the write."""
        import asyncio

        try:
            prepared = step.ctx.artifacts.prepare(output, what=self._what)
        except KitaruError:  # _completed meets it again, and records the failure
            prepared = None
        if frame.uploads or (prepared is not None and prepared.uploads):
            return await asyncio.to_thread(
                self._completed, step, frame, attempt, output, current, prepared
            )
        return self._completed(step, frame, attempt, output, current, prepared)

    def _run_async_body(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """An async checkpoint submitted to a thread: its own event loop there."""
        import asyncio

        return asyncio.run(self._arun(step, args, kwargs))

    def _attempt_failed(
        self,
        step: Step,
        frame: CheckpointFrame,
        attempt: int,
        exc: Exception,
    ) -> None:
        """Record the last failure and re-raise it, or log the attempt to retry."""
        retries = step.ctx.default_retries if self.retries is None else self.retries
        if attempt > retries:
            self._failed(step, frame, attempt, exc)
            raise exc
        log_event(
            step.ctx.exec_id,
            f"checkpoint {self.name} attempt {attempt} failed: {type(exc).__name__}: {exc}; "
            "retrying",
        )

    @property
    def _what(self) -> str:
        return f"the output of checkpoint {self.name!r}"

    def _completed(
        self,
        step: Step,
        frame: CheckpointFrame,
        attempt: int,
        output: R,
        current: Any,
        prepared: Prepared | None = None,
    ) -> R:
        try:
            step.complete(
                output,
                artifacts=frame.all_saved(),
                attempts=attempt,
                metadata=frame.metadata,
                artifact_type=self.type,
                what=self._what,
                prepared=prepared,
            )
        except KitaruError as exc:  # the artifact store failed: not completed, runs again
            self._failed(step, frame, attempt, exc)
            raise
        set_attributes(current, **{"kitaru.attempts": attempt})
        return output

    def _preview(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, str]:
        """What the body was called with, each argument by its parameter's name as a
        short text: the step debugger shows it beside the output."""
        if self._parameters is None:
            try:
                self._parameters = list(inspect.signature(self.func).parameters)
            except (TypeError, ValueError):
                self._parameters = []
        names = self._parameters
        shown = {
            names[i] if i < len(names) else f"arg{i}": preview(value)
            for i, value in enumerate(args)
        }
        for name, value in kwargs.items():
            shown[name] = preview(value)
        return shown

    def _failed(
        self,
        step: Step,
        frame: CheckpointFrame,
        attempts: int,
        exc: Exception,
    ) -> None:
        step.fail(exc, attempts=attempts, metadata=frame.metadata)
        log_event(
            step.ctx.exec_id,
            f"checkpoint {self.name} failed after {attempts} attempt(s): "
            f"{type(exc).__name__}: {exc}",
        )
        exc.add_note(f"in kitaru checkpoint {self.name!r} (position {step.position})")


@overload
def checkpoint(func: Callable[P, R], /) -> Checkpoint[P, R]: ...
@overload
def checkpoint(
    *,
    retries: int | None = None,
    retry_delay: float = 0.0,
    name: str | None = None,
    type: str | None = None,
) -> Callable[[Callable[P, R]], Checkpoint[P, R]]: ...
def checkpoint(
    func: Callable[P, R] | None = None,
    /,
    *,
    retries: int | None = None,
    retry_delay: float = 0.0,
    name: str | None = None,
    type: str | None = None,
) -> Checkpoint[P, R] | Callable[[Callable[P, R]], Checkpoint[P, R]]:
    """Record a function's result in the running flow's journal.

    ``retries`` (default: the flow's) reruns a failing body after ``retry_delay`` seconds.
    """

    def wrap(f: Callable[P, R]) -> Checkpoint[P, R]:
        return Checkpoint(f, name=name, retries=retries, retry_delay=retry_delay, type=type)

    return wrap(func) if func is not None else wrap


INPUTS = "inputs"
"""Where a checkpoint's journal entry keeps what it was called with (``preview``)."""
_PREVIEW = reprlib.Repr()
_PREVIEW.maxstring = 200
_PREVIEW.maxother = 200
_PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxdict = _PREVIEW.maxset = 10
_PREVIEW.maxlevel = 3
_PLAIN = (int, float, bool, type(None))


def preview(value: Any) -> str:
    """A value as a short text, bounded whatever its size (``reprlib``); a number or a
    short string, the common case, at the cost of a ``repr``."""
    if type(value) in _PLAIN or (type(value) is str and len(value) <= 200):
        return repr(value)
    return _PREVIEW.repr(value)
