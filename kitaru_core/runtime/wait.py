"""``kitaru.wait()``: stop until a person or another agent gives input, holding nothing.

A wait is a journaled step (``step.py``). With no input yet it is recorded as
pending (with the JSON schema of the value it expects), the flow body unwinds and the
execution becomes ``waiting``; no process is kept for it. Input given later is checked
against the schema, stored, and the execution is resumed: the body runs again from the
top, every completed checkpoint answers from the journal, and this time the wait
returns the input.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from kitaru_core import clock
from kitaru_core.errors import (
    KitaruContextError,
    KitaruUsageError,
    KitaruWaitExpiredError,
    KitaruWaitValidationError,
)
from kitaru_core.events import WaitCreated
from kitaru_core.runtime.context import (
    ExecutionCancelled,
    ExecutionContext,
    Suspended,
    current_checkpoint,
    require_flow,
)
from kitaru_core.runtime.inputs import give_input
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.step import Step
from kitaru_core.runtime.tracing import set_attributes, span
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import WaitRecord
from kitaru_core.untrusted import parse_json_or_text, validate_name

_POLL_INTERVAL = 0.2


_NO_DEFAULT: Any = object()


class WaitSuspended(Suspended):
    """Unwinds a flow body that waits for input; ``wake_at`` is the wait's deadline."""

    status = "waiting"


def seconds_of(duration: float | dt.timedelta, what: str) -> float:
    """A duration given as seconds or a ``timedelta``, checked to be finite and not negative."""
    seconds = duration.total_seconds() if isinstance(duration, dt.timedelta) else duration
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise KitaruUsageError(f"{what} must be seconds or a timedelta, not {duration!r}")
    if not 0 <= seconds < float("inf"):
        raise KitaruUsageError(f"{what} must be 0 or more seconds, not {duration!r}")
    return float(seconds)


def schema_name(schema: Any) -> str:
    """The expected type as a person reads it."""
    if isinstance(schema, type):
        return schema.__name__
    return repr(schema).replace("typing.", "")


def type_adapter(schema: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(schema)


def wait(
    *,
    schema: Any = bool,
    name: str | None = None,
    question: str | None = None,
    timeout: float | None = None,
    metadata: dict[str, Any] | None = None,
    expires_after: float | dt.timedelta | None = None,
    default: Any = _NO_DEFAULT,
) -> Any:
    """Wait for input that fits ``schema``; returns it once given.

    In the flow body only. ``timeout`` is how many seconds this process may poll for
    the input before letting go of the execution (default: 0, or a prompt at an
    interactive terminal). ``expires_after`` (seconds or a timedelta, counted from when
    the wait is first recorded): with no input by then, the wait returns ``default``
    if one was given, else raises ``KitaruWaitExpiredError`` here, in the flow.
    """
    ctx, name, run, adapter = _wait_step(
        schema, name, question, timeout, metadata, expires_after, default
    )
    return ctx.step(name, "wait", run, load=adapter.validate_python)


def ainput(
    *,
    schema: Any = bool,
    name: str | None = None,
    question: str | None = None,
    timeout: float | None = None,
    metadata: dict[str, Any] | None = None,
    expires_after: float | dt.timedelta | None = None,
    default: Any = _NO_DEFAULT,
) -> Awaitable[Any]:
    """``wait`` for async flows: ``await kitaru.ainput(schema=bool, ...)`` (``await`` is
    a keyword, so this twin is named for what it awaits). Its journal position is taken
    when it is called, like a checkpoint's; its store calls, and any ``timeout`` spent
    polling, run in a thread, so the event loop goes on meanwhile."""
    ctx, name, run, adapter = _wait_step(
        schema, name, question, timeout, metadata, expires_after, default
    )
    return ctx.astep(name, "wait", run, load=adapter.validate_python)


def _wait_step(
    schema: Any,
    name: str | None,
    question: str | None,
    timeout: float | None,
    metadata: dict[str, Any] | None,
    expires_after: float | dt.timedelta | None,
    default: Any,
) -> tuple[ExecutionContext, str, Callable[[Step], Any], Any]:
    """What ``wait`` and ``ainput`` check and run: (context, name, the step, adapter)."""
    frame = current_checkpoint.get()
    if frame is not None:
        raise KitaruContextError(
            f"kitaru.wait() was called inside checkpoint {frame.name!r}; wait in the flow "
            "body, between checkpoints, so the checkpoint's work is recorded first"
        )
    ctx = require_flow("kitaru.wait()")
    name = name or ctx.next_name("wait")
    validate_name("wait name", name)
    ctx.claim_wait_name(name)
    adapter = type_adapter(schema)
    expires_in = None if expires_after is None else seconds_of(expires_after, "expires_after")

    def run(step: Step) -> Any:
        attributes = {"kitaru.wait.name": name, "kitaru.position": step.position}
        with span(f"kitaru.wait {name}", attributes) as current:
            request = _Request(question, timeout, metadata or {}, schema, expires_in, default)
            value = _wait_for_input(step, request, adapter)
            set_attributes(current, **{"kitaru.wait.status": "answered"})
        return value

    return ctx, name, run, adapter


class _Request(NamedTuple):
    question: str | None
    timeout: float | None
    metadata: dict[str, Any]
    schema: Any
    expires_in: float | None
    default: Any


def _wait_for_input(step: Step, request: _Request, adapter: Any) -> Any:
    ctx, name = step.ctx, step.name
    question, timeout = request.question, request.timeout
    waits = ctx.store.waits
    now = clock.now()
    record = waits.create_pending(
        exec_id=ctx.exec_id,
        name=name,
        position=step.position,
        question=question,
        schema=adapter.json_schema(),
        schema_name=schema_name(request.schema),
        metadata=request.metadata,
        expires_at=None if request.expires_in is None else now + request.expires_in,
    )
    if (
        record.status == "pending"
        and record.position == step.position
        and record.created_at > ctx.started_at
    ):
        ctx.observers.wait_created(
            WaitCreated(exec_id=ctx.exec_id, name=name, question=question, schema=record.schema)
        )
    expires_at = record.expires_at
    if record.status == "pending":
        left = None if expires_at is None else expires_at - now
        if left is not None and left <= 0:
            waits.expire(ctx.exec_id, name)
        elif timeout is None and left is None and ctx.interactive and sys.stdin.isatty():
            _prompt(ctx.exec_id, record.name, question, record.schema_name)
        else:
            _poll(ctx.store, ctx.exec_id, name, min(timeout or 0.0, left or float("inf")))
            if expires_at is not None and clock.now() >= expires_at:
                waits.expire(ctx.exec_id, name)
        record = waits.get(ctx.exec_id, name) or record
    if record.status == "aborted":
        raise ExecutionCancelled()
    if record.status == "expired":
        return _expired(step, record, request.default)
    if record.status != "answered" or record.value_artifact_id is None:
        _journal_waiting(step, record)
        log_event(ctx.exec_id, f"waiting for input {name!r}: {question or ''}")
        raise WaitSuspended(name, expires_at)
    value_record = ctx.store.get_artifact(record.value_artifact_id)
    assert value_record is not None
    value = ctx.artifacts.read(value_record)
    entry = step.entry(value_record.id, started_at=record.created_at)
    step.record(entry)
    step.ended(entry)
    return adapter.validate_python(value)


def _journal_waiting(step: Step, record: WaitRecord) -> None:
    """The execution reached this wait: a ``waiting`` entry holds its place in the
    journal, so code deployed meanwhile that calls something else here is found out
    (``kitaru.patched``, ``executions upgrade --dry-run``) instead of running first."""
    found = step.found
    if found is None or found[0].status != "waiting":
        step.record(step.held_entry("waiting", started_at=record.created_at))


def _expired(step: Step, record: WaitRecord, default: Any) -> Any:
    """Nobody answered in time: the default becomes the wait's recorded answer, or the
    flow hears of it where it waits."""
    ctx = step.ctx
    if default is not _NO_DEFAULT:
        log_event(ctx.exec_id, f"wait {record.name!r} expired; it resolves to its default")
        return step.complete(default, what=f"the default of wait {record.name!r}")
    log_event(ctx.exec_id, f"wait {record.name!r} expired with no input and no default")
    raise KitaruWaitExpiredError(
        f"wait {record.name!r} of execution {ctx.exec_id} expired: nobody answered by "
        f"{dt.datetime.fromtimestamp(record.expires_at or 0, dt.UTC):%Y-%m-%d %H:%M:%S} UTC. "
        "Catch KitaruWaitExpiredError in the flow, or give the wait a default=",
        exec_id=ctx.exec_id,
        wait=record.name,
    )


def _poll(store: MetadataStore, exec_id: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.waits.get(exec_id, name)
        if record is not None and record.status != "pending":
            return
        time.sleep(min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


def _prompt(exec_id: str, name: str, question: str | None, expected: str) -> None:
    """Ask at the terminal; an empty line lets go of the execution to answer later."""
    while True:
        try:
            line = input(
                f"{question or name} [{expected}; empty or Ctrl-C to answer later]: "
            ).strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return  # leave it waiting, as an empty line does
        if not line:
            return
        try:
            give_input(exec_id, name, parse_json_or_text(line, what=f"input for {name!r}"))
            return
        except (KitaruWaitValidationError, KitaruUsageError) as exc:
            print(exc, file=sys.stderr)
