"""``@checkpoint``: a function whose completed result is recorded and never recomputed.

Each call in a flow body is one journaled step (``step.py``): answered from the journal
when an earlier run completed it, else the body runs (with its retries) and its output
is recorded before the value is returned to the flow body.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, Generic, ParamSpec, TypeVar, overload

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
        return self._context().step(self.name, "checkpoint", lambda s: self._run(s, args, kwargs))

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

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                ctx.check_cancelled()
                future.set_result(run_in_context(self._run, step, args, kwargs))
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
        ctx = step.ctx
        step.started_at = time.time()  # a submitted step may have queued since its call
        retries = ctx.default_retries if self.retries is None else self.retries
        with span(f"kitaru.checkpoint {self.name}", {"kitaru.position": step.position}) as current:
            attempt = 0
            while True:
                attempt += 1
                frame = CheckpointFrame(self.name, step.position)
                token = current_checkpoint.set(frame)
                try:
                    output = self.func(*args, **kwargs)
                    break
                except Exception as exc:
                    if attempt > retries:
                        self._failed(step, frame, attempt, exc)
                        raise
                    log_event(
                        ctx.exec_id,
                        f"checkpoint {self.name} attempt {attempt} failed: "
                        f"{type(exc).__name__}: {exc}; retrying",
                    )
                    if self.retry_delay:
                        time.sleep(self.retry_delay)
                finally:
                    current_checkpoint.reset(token)
            try:
                step.complete(
                    output,
                    artifacts=frame.saved,
                    attempts=attempt,
                    metadata=frame.metadata,
                    artifact_type=self.type,
                    what=f"the output of checkpoint {self.name!r}",
                )
            except KitaruError as exc:  # the artifact store failed: not completed, runs again
                self._failed(step, frame, attempt, exc)
                raise
            set_attributes(current, **{"kitaru.attempts": attempt})
            return output

    def _failed(self, step: Step, frame: CheckpointFrame, attempts: int, exc: Exception) -> None:
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
