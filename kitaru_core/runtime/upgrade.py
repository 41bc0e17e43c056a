"""Would an execution still replay on today's code? ``kitaru executions upgrade --dry-run``.

The execution's flow body, imported as it is now, runs against the execution's journal
with nothing run and nothing recorded: every step the journal holds answers from it
(its name checked, as a resume checks it), and the first step it does not hold ends the
check, since that is where a resume would carry on with new work. A step whose name is
not the journal's is the divergence a resume would fail with. The body's own code runs
as on every resume; a flow body does its work in steps, so that is safe.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import asdict, dataclass
from typing import Any

from kitaru_core.errors import KitaruDivergenceError
from kitaru_core.runtime import trust
from kitaru_core.runtime.code_archive import archive_for
from kitaru_core.runtime.code_version import code_version_of
from kitaru_core.runtime.context import (
    DryRunEnded,
    ExecutionContext,
    Suspended,
)
from kitaru_core.runtime.engine import load_inputs, run_body
from kitaru_core.runtime.journal import JournalReader
from kitaru_core.runtime.scopes import TASK_PATHS
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import ExecutionRecord


@dataclass
class UpgradeCheck:
    """What replaying one execution on the current code found."""

    exec_id: str
    flow_name: str
    status: str
    verdict: str
    """``ok`` (it replays), ``diverges`` (a resume would fail) or ``error`` (the code
    could not be loaded, or the body raised before reaching the journal's end)."""
    detail: str
    position: int | None = None
    """Where it diverges, or where a resume would carry on."""
    recorded: str | None = None
    called: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_upgrade(exec_id: str, store: MetadataStore | None = None) -> UpgradeCheck:
    store = store or get_store()
    record = store.require_execution(exec_id)
    try:
        return _replay(store, record)
    except KitaruDivergenceError as exc:
        return _check(
            record,
            "diverges",
            f"at position {exc.position} the journal records {exc.recorded!r} and the code "
            f"now calls {exc.called!r}; put the change behind kitaru.patched()",
            position=exc.position,
            recorded=exc.recorded,
            called=exc.called,
        )
    except DryRunEnded as ended:
        step = ended.step
        return _check(
            record,
            "ok",
            f"replays every recorded step; a resume continues with {step.name!r} "
            f"at position {step.position}",
            position=step.position,
            called=step.name,
        )
    except Exception as exc:  # the code would not load, or the body raised
        return _check(record, "error", f"{type(exc).__name__}: {exc}")


def _replay(store: MetadataStore, record: ExecutionRecord) -> UpgradeCheck:
    stack = get_stack(record.stack)
    flow = trust.current_flow(record, stack)  # today's code, not its archive's
    args, kwargs = load_inputs(store, stack.artifacts, record, flow.signature)
    ctx = ExecutionContext(
        exec_id=record.id,
        flow_name=record.flow_name,
        store=store,
        journal=JournalReader(store, record.id),
        default_retries=0,
        cancelled=threading.Event(),
        stack=stack,
        key=record.queue_key,
        budget=record.options.get("budget"),
        task_paths=bool(record.options.get(TASK_PATHS)),
    )
    ctx.dry_run = True
    with contextlib.suppress(Suspended):  # a recorded wait or timer it stops at again
        run_body(flow, ctx, args, kwargs)
    return _check(record, "ok", "replays every recorded step, and its body ends there")


def _check(record: ExecutionRecord, verdict: str, detail: str, **where: Any) -> UpgradeCheck:
    return UpgradeCheck(record.id, record.flow_name, record.status, verdict, detail, **where)


def waiting_executions(store: MetadataStore | None = None) -> list[ExecutionRecord]:
    """Every execution a deploy would leave for a later resume: waiting or sleeping."""
    store = store or get_store()
    return store.list_executions(status=["waiting", "sleeping"], limit=None)


def move_to_current(exec_id: str, store: MetadataStore | None = None) -> str:
    """Record that ``exec_id`` runs the code as it is now (its version, and with
    ``code: archive`` a new archive of today's tree): its next run imports that.
    Returns the new code version. Check first (``check_upgrade``) that it replays."""
    store = store or get_store()
    record = store.require_execution(exec_id)
    stack = get_stack(record.stack)
    flow = trust.current_flow(record, stack)
    archive, artifacts = None, []
    if record.code_archive is not None:
        tree, archived = archive_for(flow, stack, store, record.id)
        archive, artifacts = tree.digest, [archived]
        store.merge_execution_options(record.id, {"code_root": str(tree.root)})
    version = code_version_of(flow)
    store.set_code(record.id, version, archive, artifacts)
    moved = store.require_execution(record.id)
    trust.sign(store, moved, stack)  # the reference now names the new archive
    return version
