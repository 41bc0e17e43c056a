"""``kitaru.wait()``: stop until a person or another agent gives input, holding nothing.

A wait is a journaled step (``step.py``). With no input yet it is recorded as
pending (with the JSON schema of the value it expects), the flow body unwinds and the
execution becomes ``waiting``; no process is kept for it. Input given later is checked
against the schema, stored, and the execution is resumed: the body runs again from the
top, every completed checkpoint answers from the journal, and this time the wait
returns the input.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from kitaru_core.errors import KitaruContextError, KitaruUsageError, KitaruWaitValidationError
from kitaru_core.events import WaitCreated
from kitaru_core.runtime.context import ExecutionCancelled, current_checkpoint, require_flow
from kitaru_core.runtime.inputs import give_input
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.step import Step
from kitaru_core.runtime.tracing import set_attributes, span
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.untrusted import parse_json_or_text, validate_name

_POLL_INTERVAL = 0.2


class WaitSuspended(BaseException):
    """Unwinds a flow body that waits for input (not an ``Exception``: user code's
    ``except Exception`` must not swallow it)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


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
) -> Any:
    """Wait for input that fits ``schema``; returns it once given.

    In the flow body only. ``timeout`` is how many seconds this process may poll for
    the input before letting go of the execution (default: 0, or a prompt at an
    interactive terminal).
    """
    frame = current_checkpoint.get()
    if frame is not None:
        raise KitaruContextError(
            f"kitaru.wait() was called inside checkpoint {frame.name!r}; wait in the flow "
            "body, between checkpoints, so the checkpoint's work is recorded first"
        )
    ctx = require_flow("kitaru.wait()")
    name = name or ctx.next_wait_name()
    validate_name("wait name", name)
    ctx.claim_wait_name(name)
    adapter = type_adapter(schema)

    def run(step: Step) -> Any:
        attributes = {"kitaru.wait.name": name, "kitaru.position": step.position}
        with span(f"kitaru.wait {name}", attributes) as current:
            value = _wait_for_input(step, question, timeout, metadata or {}, schema, adapter)
            set_attributes(current, **{"kitaru.wait.status": "answered"})
        return value

    return ctx.step(name, "wait", run, load=adapter.validate_python)


def _wait_for_input(
    step: Step,
    question: str | None,
    timeout: float | None,
    metadata: dict[str, Any],
    schema: Any,
    adapter: Any,
) -> Any:
    ctx, name = step.ctx, step.name
    waits = ctx.store.waits
    record = waits.create_pending(
        exec_id=ctx.exec_id,
        name=name,
        position=step.position,
        question=question,
        schema=adapter.json_schema(),
        schema_name=schema_name(schema),
        metadata=metadata,
    )
    if (
        record.status == "pending"
        and record.position == step.position
        and record.created_at > ctx.started_at
    ):
        ctx.observers.wait_created(
            WaitCreated(exec_id=ctx.exec_id, name=name, question=question, schema=record.schema)
        )
    if record.status == "pending":
        if timeout is None and ctx.interactive and sys.stdin.isatty():
            _prompt(ctx.exec_id, record.name, question, record.schema_name)
        else:
            _poll(ctx.store, ctx.exec_id, name, timeout or 0.0)
        record = waits.get(ctx.exec_id, name) or record
    if record.status == "aborted":
        raise ExecutionCancelled()
    if record.status != "answered" or record.value_artifact_id is None:
        log_event(ctx.exec_id, f"waiting for input {name!r}: {question or ''}")
        raise WaitSuspended(name)
    value_record = ctx.store.get_artifact(record.value_artifact_id)
    assert value_record is not None
    value = ctx.artifacts.read(value_record)
    entry = step.entry(value_record.id, started_at=record.created_at)
    step.record(entry)
    step.ended(entry)
    return adapter.validate_python(value)


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
