"""Giving input to a waiting execution, from any process (a person, a CLI, another flow).

The value is checked against the JSON schema the wait recorded, so the process giving
input needs neither the flow's code nor its types. A refused value stores nothing.
"""

from __future__ import annotations

from typing import Any

from kitaru_core.errors import KitaruStateError, KitaruUsageError, KitaruWaitValidationError
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import TERMINAL_STATUSES, ExecutionRecord, WaitRecord
from kitaru_core.untrusted import plain_data


def find_pending_wait(
    store: MetadataStore, record: ExecutionRecord, wait: str | None
) -> WaitRecord:
    """The wait named ``wait``, or the only pending one when no name is given."""
    if wait is None:
        pending = store.waits.pending(record.id)
        if len(pending) == 1:
            return pending[0]
        if not pending:
            raise KitaruStateError(
                f"execution {record.id} ({record.status}) has no pending wait to answer"
            )
        names = ", ".join(w.name for w in pending)
        raise KitaruUsageError(
            f"execution {record.id} waits for several inputs ({names}); name one with --wait"
        )
    found = store.waits.get(record.id, wait)
    if found is None:
        known = ", ".join(w.name for w in store.waits.for_execution(record.id)) or "none"
        raise KitaruUsageError(
            f"execution {record.id} has no wait named {wait!r} (its waits: {known})"
        )
    if found.status != "pending":
        raise KitaruStateError(
            f"wait {wait!r} of execution {record.id} was already {found.status}; "
            "input can be given once"
        )
    return found


def validate(record: WaitRecord, value: Any) -> None:
    import jsonschema

    try:
        jsonschema.validate(value, record.schema)
    except jsonschema.ValidationError as exc:
        raise KitaruWaitValidationError(
            f"input for wait {record.name!r} of execution {record.exec_id} must be "
            f"{record.schema_name}: {exc.message}. Nothing was stored; the execution is "
            "still waiting"
        ) from None


def give_input(exec_id: str, wait: str | None, value: Any) -> tuple[ExecutionRecord, WaitRecord]:
    """Validate and store the input; returns the execution and the answered wait."""
    store = get_store()
    record = store.require_execution(exec_id)
    if record.status in TERMINAL_STATUSES:
        raise KitaruStateError(
            f"execution {record.id} has ended ({record.status}); it takes no more input"
        )
    pending = find_pending_wait(store, record, wait)
    what = f"input for wait {pending.name!r} of execution {record.id}"
    try:
        value = plain_data(value, what=what)  # data, never objects
    except KitaruUsageError as exc:
        raise KitaruWaitValidationError(str(exc)) from None
    validate(pending, value)
    artifact = get_stack(record.stack).artifacts.write(
        value, exec_id=record.id, name=pending.name, role="wait", what=what, data_only=True
    )
    if not store.waits.answer(record.id, pending.name, artifact):
        raise KitaruStateError(
            f"wait {pending.name!r} of execution {record.id} was answered, aborted or expired "
            "meanwhile; input can be given once"
        )
    return record, pending


def abort_wait(exec_id: str, wait: str | None) -> ExecutionRecord:
    """Refuse the wait: the execution ends ``cancelled``; later checkpoints never run."""
    store = get_store()
    record = store.require_execution(exec_id)
    pending = find_pending_wait(store, record, wait)
    store.waits.abort(record.id, pending.name)
    get_stack(record.stack).orchestrator.cancel(record.id)
    final = store.get_execution(record.id)
    assert final is not None
    return final
