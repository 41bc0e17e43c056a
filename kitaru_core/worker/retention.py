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

import collections
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from kitaru_core.errors import KitaruStateError, KitaruUsageError
from kitaru_core.runtime.logs import log_paths
from kitaru_core.stack import Stack
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import TERMINAL_STATUSES, ExecutionRecord

PRUNABLE = ("completed", "failed", "cancelled")
PAGE = 400
"""Executions deleted in one transaction, and blob keys checked in one query: memory
and lock time stay flat however much there is to delete."""
_MOST_WAITING = 50_000
"""Unreferenced keys held while they settle, at most (a few MB)."""


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
    return _delete_ended(store, [r.id for r in records])


def _delete_ended(store: MetadataStore, ids: list[str]) -> Deleted:
    blobs = store.retention.delete_executions(ids)
    store.retention.forget_blob_writes()
    for path in log_paths(ids):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    deleted = Deleted(executions=ids)
    by_stack: dict[str, set[str]] = {}
    for stack_name, key in blobs:
        by_stack.setdefault(stack_name, set()).add(key)
    for stack_name, keys in by_stack.items():
        deleted.blobs += delete_unreferenced(store, get_stack(stack_name), keys)
    return deleted


def _ended_statuses(statuses: Iterable[str]) -> list[str]:
    chosen = list(statuses)
    wrong = [s for s in chosen if s not in PRUNABLE]
    if wrong:
        raise KitaruUsageError(
            f"cannot prune executions that are {', '.join(wrong)}: only ended ones "
            f"({', '.join(PRUNABLE)})"
        )
    return chosen


def prunable(
    store: MetadataStore,
    *,
    older_than: float,
    statuses: Iterable[str] = PRUNABLE,
    limit: int | None = None,
) -> list[ExecutionRecord]:
    """Ended executions created more than ``older_than`` seconds ago, newest first."""
    return store.list_executions(
        status=_ended_statuses(statuses), created_before=time.time() - older_than, limit=limit
    )


def prune(
    store: MetadataStore,
    *,
    older_than: float,
    statuses: Iterable[str] = PRUNABLE,
    stack: str | None = None,
    pages: int | None = None,
    on_page: Callable[[Deleted], None] | None = None,
) -> Deleted:
    """Delete ended executions created more than ``older_than`` seconds ago, ``PAGE`` at
    a time, each page in its own transactions; at most ``pages`` pages when given (the
    worker does a page a pass). ``on_page`` hears the running totals."""
    chosen = _ended_statuses(statuses)
    cutoff = time.time() - older_than
    total = Deleted()
    for _ in itertools.count() if pages is None else range(pages):
        page = store.oldest_ids(status=chosen, created_before=cutoff, stack=stack, limit=PAGE)
        if not page:
            break
        deleted = _delete_ended(store, page)
        total.executions += deleted.executions
        total.blobs += deleted.blobs
        if on_page is not None:
            on_page(total)
        if len(page) < PAGE:
            break
    return total


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


def unreferenced_blobs(store: MetadataStore, stack: Stack) -> Iterator[str]:
    """Keys in the stack's artifact store that no artifact row refers to, as the store
    lists them: a page of keys is checked at a time, never the whole store at once."""
    keys = iter(stack.artifact_store.list())
    while page := list(itertools.islice(keys, PAGE)):
        kept = store.retention.kept_among(page)
        yield from (key for key in page if key not in kept)


def collect_garbage(
    store: MetadataStore,
    stack: Stack,
    *,
    settle: float = 5.0,
    on_deleted: Callable[[int], None] | None = None,
) -> list[str]:
    """Delete unreferenced blobs. A blob is put before the row that refers to it is
    committed, so a blob goes only when it is still unreferenced ``settle`` seconds
    after it was first seen unreferenced: candidates wait in a queue while the listing
    goes on, so the wait is paid once, not once a page."""
    deleted: list[str] = []
    waiting: collections.deque[tuple[float, str]] = collections.deque()

    def delete_settled(until: float) -> None:
        due = []
        while waiting and waiting[0][0] <= until:
            due.append(waiting.popleft()[1])
        if due:
            deleted.extend(delete_unreferenced(store, stack, due))
            if on_deleted is not None:
                on_deleted(len(deleted))

    for key in unreferenced_blobs(store, stack):
        waiting.append((time.monotonic() + settle, key))
        if len(waiting) >= _MOST_WAITING:  # listing outruns the wait: let it catch up
            time.sleep(max(0.0, waiting[0][0] - time.monotonic()))
        if waiting[0][0] <= time.monotonic():
            delete_settled(time.monotonic())
    if waiting:
        time.sleep(max(0.0, waiting[-1][0] - time.monotonic()))
        delete_settled(waiting[-1][0])
    return deleted
