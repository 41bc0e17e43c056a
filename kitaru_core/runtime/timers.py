"""``kitaru.sleep`` and ``kitaru.sleep_until``: durable timers.

A timer is a journaled step. Its deadline is recorded when the flow first reaches it
(an entry with status ``sleeping`` whose output is the deadline), so a resumed
execution keeps the deadline it had and never sleeps again once it has passed. A short
timer (at most ``KITARU_SLEEP_INLINE_SECONDS``, 5 by default) is slept in place; a
longer one makes the execution ``sleeping`` and lets the process go. The worker, whose
clock decides what is due, marks the timer's entry completed and resumes the execution.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

from kitaru_core import clock
from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime.context import (
    ExecutionContext,
    Suspended,
    current_checkpoint,
    current_execution,
    require_flow,
)
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.step import Step
from kitaru_core.runtime.wait import seconds_of
from kitaru_core.untrusted import validate_name

DEFAULT_INLINE_SECONDS = 5.0


class SleepSuspended(Suspended):
    """Unwinds a flow body at a timer that is not due yet."""

    status = "sleeping"


def inline_seconds() -> float:
    """Timers this short are slept in place (``KITARU_SLEEP_INLINE_SECONDS``)."""
    raw = os.environ.get("KITARU_SLEEP_INLINE_SECONDS", "").strip()
    if not raw:
        return DEFAULT_INLINE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise KitaruUsageError(
            f"KITARU_SLEEP_INLINE_SECONDS={raw!r} is not a number of seconds; use e.g. 5"
        )
    return value


def sleep(duration: float | dt.timedelta, *, name: str | None = None) -> None:
    """Pause the flow for ``duration`` (seconds or a timedelta), durably."""
    seconds = seconds_of(duration, "kitaru.sleep() duration")
    _timer("kitaru.sleep()", name, lambda now: now + seconds, seconds)


def sleep_until(when: dt.datetime, *, name: str | None = None) -> None:
    """Pause the flow until ``when`` (a timezone-aware datetime), durably."""
    if not isinstance(when, dt.datetime) or when.tzinfo is None:
        raise KitaruUsageError(
            f"kitaru.sleep_until() needs a timezone-aware datetime, not {when!r}; e.g. "
            "datetime(2030, 1, 1, 9, tzinfo=ZoneInfo('Europe/Berlin')) or datetime.now(UTC)"
        )
    deadline = when.timestamp()
    _timer("kitaru.sleep_until()", name, lambda _now: deadline, None)


async def asleep(duration: float | dt.timedelta, *, name: str | None = None) -> None:
    """``sleep`` for async flows: ``await kitaru.asleep(3600)``."""
    seconds = seconds_of(duration, "kitaru.asleep() duration")
    ctx = current_execution.get()
    if ctx is None or current_checkpoint.get() is not None:
        import asyncio

        await asyncio.sleep(seconds)  # nothing to record: a plain pause
        return
    name = validate_name("timer name", name or ctx.next_name("sleep"))
    await ctx.astep(
        name, "sleep", lambda step: _sleep(ctx, step, lambda now: now + seconds), load=None
    )


def _timer(
    what: str, name: str | None, deadline_from: Callable[[float], float], seconds: float | None
) -> None:
    if current_checkpoint.get() is not None:
        # Inside a checkpoint, the checkpoint is what is recorded: sleep in place.
        if seconds is None:
            seconds = max(0.0, deadline_from(0.0) - clock.now())
        clock.clock().sleep(seconds)
        return
    ctx = require_flow(what)
    name = validate_name("timer name", name or ctx.next_name("sleep"))
    ctx.step(name, "sleep", lambda step: _sleep(ctx, step, deadline_from), load=None)


def _sleep(ctx: ExecutionContext, step: Step, deadline_from: Callable[[float], float]) -> None:
    found = step.found
    if found is not None and found[0].status == "sleeping" and found[0].name == step.name:
        entry, output = found  # an earlier run recorded this timer: its deadline holds
        assert output is not None
        deadline = float(ctx.artifacts.read(output))
    else:
        deadline = deadline_from(clock.now())
        output = step.output(deadline, what=f"the deadline of timer {step.name!r}")
        entry = step.held_entry(
            "sleeping",
            started_at=step.started_at,
            output_artifact_id=output.id,
            metadata={"wake_at": deadline},
        )
        step.record(entry, [output])
    left = deadline - clock.now()
    if left > inline_seconds():
        when = dt.datetime.fromtimestamp(deadline, dt.UTC)
        log_event(ctx.exec_id, f"sleeping at {step.name!r} until {when:%Y-%m-%d %H:%M:%S} UTC")
        raise SleepSuspended(step.name, deadline)
    clock.clock().sleep(left)
    ctx.store.complete_timer(ctx.exec_id, step.position)
    step.ended(step.entry(output.id, started_at=entry.started_at))
