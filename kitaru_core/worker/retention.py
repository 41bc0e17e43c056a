"""Deleting executions, and blobs that nothing refers to any more.

Rows go first, in the metadata store's transactions; blobs after, each only if no
artifact row holds its content key and no writer noted it lately. A writer notes the
key (``blob_writes``) before it puts the blob or skips the put because the blob exists,
and commits its row only afterwards. So after deleting, the key is checked again: a
writer that noted it before the delete (its row may not be committed yet) gets the
blob put back from the copy read just before; one that noted it after the delete
finds the blob gone and puts it itself. Nothing a row will refer to is lost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from kitaru_core.errors import KitaruStateError, KitaruUsageError
from kitaru_core.runtime.logs import log_path
from kitaru_core.stack import Stack
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import TERMINAL_STATUSES, ExecutionRecord

PRUNABLE = ("completed", "failed", "cancelled")


@dataclass
class Deleted:
    executions: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    """Content keys whose bytes were deleted from an artifact store."""


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``45m``, ``90s`` (or plain seconds) as seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    raw = text.strip().lower()
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in units else (raw, "s")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise KitaruUsageError(f"{text!r} is not an age; use e.g. 30d, 12h, 45m or 90s")
    return value * units[unit]


def delete_executions(store: MetadataStore, records: list[ExecutionRecord]) -> Deleted:
    """Delete ended executions and everything only they refer to."""
    running = [r.id for r in records if r.status not in TERMINAL_STATUSES]
    if running:
        raise KitaruStateError(
            f"execution(s) {', '.join(running[:3])} have not ended; cancel them first "
            "(`kitaru executions cancel ID`), then delete"
        )
    ids = [r.id for r in records]
    blobs = store.retention.delete_executions(ids)
    store.retention.forget_blob_writes()
    for exec_id in ids:
        with contextlib.suppress(FileNotFoundError):
            log_path(exec_id).unlink()
    deleted = Deleted(executions=ids)
    by_stack: dict[str, set[str]] = {}
    for stack_name, key in blobs:
        by_stack.setdefault(stack_name, set()).add(key)
    for stack_name, keys in by_stack.items():
        deleted.blobs += delete_unreferenced(store, get_stack(stack_name), keys)
    return deleted


def prunable(
    store: MetadataStore, *, older_than: float, statuses: Iterable[str] = PRUNABLE
) -> list[ExecutionRecord]:
    """Ended executions created more than ``older_than`` seconds ago."""
    chosen = list(statuses)
    wrong = [s for s in chosen if s not in PRUNABLE]
    if wrong:
        raise KitaruUsageError(
            f"cannot prune executions that are {', '.join(wrong)}: only ended ones "
            f"({', '.join(PRUNABLE)})"
        )
    return store.list_executions(status=chosen, created_before=time.time() - older_than, limit=None)


def delete_unreferenced(store: MetadataStore, stack: Stack, keys: Iterable[str]) -> list[str]:
    """Delete the blobs under ``keys`` that no artifact row refers to; returns them."""
    import shutil
    import tempfile  # (only when deleting: `import kitaru` does not pay for it)

    deleted = []
    artifact_store = stack.artifact_store
    for key in keys:
        if store.retention.key_is_kept(key):
            continue
        with tempfile.TemporaryFile() as copy:
            try:
                with artifact_store.open(key) as source:
                    shutil.copyfileobj(source, copy)
            except FileNotFoundError:
                continue
            artifact_store.delete(key)
            if store.retention.key_is_kept(key):  # taken by a writer meanwhile
                copy.seek(0)
                artifact_store.put(key, copy)
                continue
        deleted.append(key)
    return deleted


def unreferenced_blobs(store: MetadataStore, stack: Stack) -> list[str]:
    """Keys in the stack's artifact store that no artifact row refers to."""
    kept = store.retention.kept_keys()
    return [key for key in stack.artifact_store.list() if key not in kept]


def collect_garbage(store: MetadataStore, stack: Stack, *, settle: float = 5.0) -> list[str]:
    """Delete unreferenced blobs. A blob is written before the row that refers to it is
    committed, so only blobs still unreferenced ``settle`` seconds after they were
    first seen go."""
    candidates = unreferenced_blobs(store, stack)
    if candidates and settle > 0:
        time.sleep(settle)
    return delete_unreferenced(store, stack, candidates)
