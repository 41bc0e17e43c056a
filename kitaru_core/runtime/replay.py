"""Replay: a new execution that reuses an earlier one's recorded work up to a checkpoint.

The new execution is linked to its source (``original_exec_id``). Its journal starts as
a copy of the source's entries before ``from_``, so those answer from the record and
everything from ``from_`` on runs live; an override puts a chosen value in place of one
checkpoint's recorded output. Everything is checked before anything is written.
"""

from __future__ import annotations

import time
from typing import Any

from kitaru_core.artifacts import new_id
from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime import trust
from kitaru_core.runtime.engine import load_inputs, write_inputs
from kitaru_core.runtime.flow_ref import FlowDefinition
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import get_store
from kitaru_core.store.records import ExecutionRecord, JournalEntry, Status

OVERRIDE_PREFIX = "checkpoint."


def _positions_named(journal: dict[int, JournalEntry], name: str) -> list[int]:
    return [p for p, e in journal.items() if e.name == name and e.status == "completed"]


def _resolve_position(
    journal: dict[int, JournalEntry], what: str, name: str | int, source: str
) -> int:
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        position = int(name)
        if position not in journal:
            raise KitaruUsageError(
                f"{what}: execution {source} has no journal position {position} "
                f"(it has 0 to {max(journal, default=-1)})"
            )
        return position
    name = name.removeprefix(OVERRIDE_PREFIX)
    found = _positions_named(journal, name)
    if not found:
        known = ", ".join(sorted({e.name for e in journal.values()})) or "none"
        raise KitaruUsageError(
            f"{what}: execution {source} has no completed checkpoint named {name!r} "
            f"(its checkpoints: {known})"
        )
    if len(found) > 1:
        raise KitaruUsageError(
            f"{what}: checkpoint {name!r} ran {len(found)} times in execution {source} "
            f"(positions {', '.join(map(str, found))}); give the position instead"
        )
    return found[0]


def create_replay(
    source: ExecutionRecord,
    *,
    from_: str | int,
    overrides: dict[str, Any] | None = None,
    flow_inputs: dict[str, Any] | None = None,
    flow: FlowDefinition[Any, Any] | None = None,
) -> ExecutionRecord:
    """Create the replay execution of ``source``; returns it (the caller starts it)."""
    store = get_store()
    journal = store.load_journal(source.id)
    start = _resolve_position(journal, "from_", from_, source.id)
    override_positions: dict[int, Any] = {}
    for key, value in (overrides or {}).items():
        if not key.startswith(OVERRIDE_PREFIX):
            raise KitaruUsageError(f"override {key!r} must name a checkpoint as 'checkpoint.NAME'")
        override_positions[_resolve_position(journal, f"override {key!r}", key, source.id)] = value

    flow = flow or trust.trusted_flow(source)
    stack = get_stack(source.stack)  # recorded outputs live in the source's artifact store
    args, kwargs = load_inputs(store, stack.artifacts, source, flow.signature)
    try:
        bound = flow.signature.bind(*args, **{**kwargs, **(flow_inputs or {})})
    except TypeError as exc:
        raise KitaruUsageError(f"flow {flow.name!r} cannot take these inputs: {exc}") from None

    exec_id = new_id()
    inputs = write_inputs(stack.artifacts, exec_id, flow, bound)
    now = time.time()
    replaced = []
    for position, value in override_positions.items():
        artifact = stack.artifacts.write(
            value,
            exec_id=exec_id,
            name=journal[position].name,
            role="output",
            position=position,
            what=f"override of checkpoint {journal[position].name!r}",
        )
        entry = JournalEntry.completed(
            exec_id,
            position,
            journal[position].name,
            kind=journal[position].kind,
            started_at=now,
            ended_at=now,
            output_artifact_id=artifact.id,
            metadata={"override": True},
            path=journal[position].path,
        )
        replaced.append((entry, artifact))
    record = ExecutionRecord(
        id=exec_id,
        flow_name=source.flow_name,
        flow_ref=source.flow_ref,
        status=Status.RUNNING,
        stack=source.stack,
        created_at=now,
        original_exec_id=source.id,
        options={**source.options, "replay_from": start},
    )
    return store.create_replay(record, inputs, source.id, start, replaced)
