"""``@checkpoint``: a function whose completed result is recorded and never recomputed.

Each call in a flow body takes the next journal position. If the journal holds a
completed entry there, its recorded output is returned; otherwise the body runs, its
output is written to the artifact store, and the journal entry is committed before the
value is returned to the flow body.
"""

from __future__ import annotations

import contextvars
import functools
import time
import traceback
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
from kitaru_core.runtime.tracing import set_attributes, span
from kitaru_core.store.records import JournalEntry
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

    def _enter(self) -> tuple[ExecutionContext, int]:
        ctx = require_flow(f"checkpoint {self.name!r}")
        outer = current_checkpoint.get()
        if outer is not None:
            raise KitaruContextError(
                f"checkpoint {self.name!r} was called inside checkpoint {outer.name!r}; "
                "checkpoints cannot nest: call it from the flow body, or make it a plain "
                "function"
            )
        return ctx, ctx.reserve_position()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        ctx, position = self._enter()
        output = ctx.recorded(position, self.name)
        if output is not None:
            return ctx.artifacts.read(output)
        return self._run(ctx, position, args, kwargs)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> CheckpointFuture[R]:
        """Run concurrently; the journal position is taken now, in program order."""
        ctx, position = self._enter()
        future: CheckpointFuture[R] = CheckpointFuture()
        output = ctx.recorded(position, self.name)
        if output is not None:
            future.set_result(ctx.artifacts.read(output))
            return future
        run_in_context = contextvars.copy_context().run

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(run_in_context(self._run, ctx, position, args, kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        ctx.submitted.append(future)
        ctx.executor.submit(work)
        return future

    def map(self, *iterables: Iterable[Any]) -> list[CheckpointFuture[R]]:
        """``submit`` once per item (or per tuple of items, like the builtin ``map``)."""
        return [self.submit(*items) for items in zip(*iterables, strict=False)]  # type: ignore[call-arg]

    def _run(
        self, ctx: ExecutionContext, position: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        ctx.check_cancelled()
        with span(f"kitaru.checkpoint {self.name}", {"kitaru.position": position}) as current:
            output, attempts = self._run_and_record(ctx, position, args, kwargs)
            set_attributes(current, **{"kitaru.attempts": attempts})
            return output

    def _run_and_record(
        self, ctx: ExecutionContext, position: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[R, int]:
        retries = ctx.default_retries if self.retries is None else self.retries
        replace = ctx.has_entry(position)  # a failed entry from an earlier run
        started = time.time()
        attempt = 0
        while True:
            attempt += 1
            frame = CheckpointFrame(self.name, position)
            token = current_checkpoint.set(frame)
            try:
                output = self.func(*args, **kwargs)
                break
            except Exception as exc:
                if attempt > retries:
                    self._record_failure(ctx, frame, started, attempt, exc, replace)
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
            record = ctx.artifacts.write(
                output,
                exec_id=ctx.exec_id,
                name=self.name,
                role="output",
                position=position,
                artifact_type=self.type,
                what=f"the output of checkpoint {self.name!r}",
            )
        except KitaruError as exc:  # the artifact store failed: not completed, runs again
            self._record_failure(ctx, frame, started, attempt, exc, replace)
            raise
        entry = JournalEntry(
            exec_id=ctx.exec_id,
            position=position,
            name=self.name,
            status="completed",
            started_at=started,
            ended_at=time.time(),
            output_artifact_id=record.id,
            attempts=attempt,
            metadata=frame.metadata,
        )
        ctx.store.record_entry(entry, [record, *frame.saved], replace=replace)
        ctx.notify(
            "kitaru_checkpoint_ended",
            exec_id=ctx.exec_id,
            name=self.name,
            position=position,
            status="completed",
            duration=entry.ended_at - started,
        )
        return output, attempt

    def _record_failure(
        self,
        ctx: ExecutionContext,
        frame: CheckpointFrame,
        started: float,
        attempts: int,
        exc: Exception,
        replace: bool,
    ) -> None:
        failed = JournalEntry(
            exec_id=ctx.exec_id,
            position=frame.position,
            name=self.name,
            status="failed",
            started_at=started,
            ended_at=time.time(),
            attempts=attempts,
            error=error_info(exc),
            metadata=frame.metadata,
        )
        ctx.store.record_entry(failed, [], replace=replace)
        ctx.notify(
            "kitaru_checkpoint_ended",
            exec_id=ctx.exec_id,
            name=self.name,
            position=frame.position,
            status="failed",
            duration=failed.ended_at - started,
        )
        log_event(
            ctx.exec_id,
            f"checkpoint {self.name} failed after {attempts} attempt(s): "
            f"{type(exc).__name__}: {exc}",
        )
        exc.add_note(f"in kitaru checkpoint {self.name!r} (position {frame.position})")


def error_info(exc: BaseException) -> dict[str, Any]:
    tp = type(exc)
    return {
        "type": f"{tp.__module__}.{tp.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


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
