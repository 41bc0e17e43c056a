"""Signed flow references: nothing forged is imported.

An execution row names the code that runs it (``flow_ref``: a module or a script, and
the folder it was found in). Whoever can write the metadata store could point that at
any script on a machine that runs executions. So each execution's reference is signed
with the deployment's key (``kitaru_core.signing``) when the execution is created, and
every path that imports a recorded flow verifies it first: the runner (and so the
worker's recovery), replay, and the server, which moreover runs only the flows it
serves. An execution whose reference does not verify is refused, never imported; an
administrator who has inspected it re-signs it with ``kitaru executions trust ID``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kitaru_core.errors import KitaruError, KitaruUntrustedError
from kitaru_core.runtime.code_archive import archived_flow
from kitaru_core.runtime.flow_ref import FlowDefinition, resolve_flow
from kitaru_core.stack import Stack
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import AFTER_UPGRADE, MetadataStore
from kitaru_core.store.records import ExecutionRecord

SIGNATURE = "ref_signature"
"""Where an execution's options keep the signature of its flow reference."""
SIGNED_ELSEWHERE = "signed_elsewhere"
"""Set by ``kitaru serve`` (never by the caller) on an execution that a logged-in
machine recorded with a reference signed by a key the server does not hold: it belongs
to that machine, so a worker that cannot verify it leaves it alone rather than failing
it as forged."""


def mark_where_signed(record: ExecutionRecord) -> ExecutionRecord:
    """``record`` as the server stores it for a caller: its options say whether the
    server's own key verifies its reference, whatever the caller sent."""
    options = {k: v for k, v in record.options.items() if k != SIGNED_ELSEWHERE}
    record = dataclasses.replace(record, options=options)
    if not is_trusted(record):
        options[SIGNED_ELSEWHERE] = True
    return record


def reference_signature(
    stack: Stack,
    flow_ref: str,
    source_root: str | None,
    flow_name: str,
    code_archive: str | None = None,
) -> str:
    return stack.artifacts.signer.sign_reference(flow_ref, source_root, flow_name, code_archive)


def is_trusted(record: ExecutionRecord, stack: Stack | None = None) -> bool:
    stack = stack or get_stack(record.stack)
    return stack.artifacts.signer.verify_reference(
        record.flow_ref,
        record.options.get("source_root"),
        record.flow_name,
        record.options.get(SIGNATURE),
        record.code_archive,
    )


def check_trusted(record: ExecutionRecord, stack: Stack | None = None) -> None:
    if not is_trusted(record, stack):
        raise KitaruUntrustedError(
            f"execution {record.id}: its flow reference {record.flow_ref!r} is not signed by "
            "this deployment's key (the row was written without it, or changed since), so it "
            f"was not imported. Inspect it with `kitaru executions get {record.id}`; if it is "
            f"yours, `kitaru executions trust {record.id}`"
        )


def trusted_flow(record: ExecutionRecord, stack: Stack | None = None) -> FlowDefinition[Any, Any]:
    """The flow that runs ``record``, imported only once its reference verifies."""
    check_trusted(record, stack)
    if record.code_archive is not None:
        return archived_flow(record, stack or get_stack(record.stack))
    return resolve_flow(record.flow_ref, record.options.get("source_root"))


def current_flow(record: ExecutionRecord, stack: Stack | None = None) -> FlowDefinition[Any, Any]:
    """The flow of ``record`` as the code where this process runs has it today (not its
    archive): what a move to today's code would run. Imported once the reference verifies."""
    check_trusted(record, stack)
    return resolve_flow(record.flow_ref, record.options.get("source_root"))


def sign_existing(store: MetadataStore) -> int:
    """Sign the flow references of executions recorded before references were signed
    (run once by the process that upgraded the store: it holds the key). An execution
    whose stack cannot be built here is left for ``kitaru executions trust``."""
    signed = 0
    stacks: dict[str, Stack | None] = {}
    for (exec_id,) in store.db.fetchall("SELECT id FROM executions"):
        record = store.get_execution(exec_id)
        if record is None or record.options.get(SIGNATURE):
            continue
        if record.stack not in stacks:
            try:
                stacks[record.stack] = get_stack(record.stack)
            except KitaruError:
                stacks[record.stack] = None
        stack = stacks[record.stack]
        if stack is not None:
            sign(store, record, stack)
            signed += 1
    return signed


def sign(store: MetadataStore, record: ExecutionRecord, stack: Stack | None = None) -> None:
    """Trust ``record``'s flow reference as it is now (``kitaru executions trust``)."""
    stack = stack or get_stack(record.stack)
    signature = reference_signature(
        stack,
        record.flow_ref,
        record.options.get("source_root"),
        record.flow_name,
        record.code_archive,
    )
    store.merge_execution_options(record.id, {SIGNATURE: signature})


AFTER_UPGRADE.append(sign_existing)
