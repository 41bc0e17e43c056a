"""``kitaru.save``, ``kitaru.load`` and ``kitaru.log``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import KitaruContextError, KitaruUsageError
from kitaru_core.runtime.context import current_checkpoint, current_execution, require_checkpoint
from kitaru_core.stack_registry import get_stack

if TYPE_CHECKING:
    from kitaru_core.store.records import ArtifactRecord


def save(name: str, value: Any, *, type: str = "output", tags: list[str] | None = None) -> None:
    """Keep ``value`` as a named artifact of the running checkpoint.

    The value is serialized now and its bytes stored now (in an ``async def``
    checkpoint: when it completes, in a thread, so the event loop is not held); the
    record is committed with the checkpoint's journal entry, so a checkpoint that
    crashes before completing leaves no saved artifacts.
    """
    frame = require_checkpoint("kitaru.save()")
    ctx = current_execution.get()
    assert ctx is not None
    if not name or not isinstance(name, str):
        raise KitaruUsageError("kitaru.save() needs a non-empty artifact name")
    what = f"artifact {name!r}"
    # Serialized now, so later changes to the value are not saved.
    prepared = ctx.artifacts.prepare(value, what=what)

    def write() -> ArtifactRecord:
        return ctx.artifacts.write(
            value,
            exec_id=ctx.exec_id,
            name=name,
            role="saved",
            position=frame.position,
            artifact_type=type,
            tags=tags,
            what=what,
            prepared=prepared,
        )

    if frame.on_loop and prepared.uploads and prepared.stream is None:
        frame.uploads.append(write)  # in an async body: uploaded off the event loop
    else:
        frame.saved.append(write())


def load(exec_id: str, name: str) -> Any:
    """The latest artifact called ``name`` of an execution (saved, or a checkpoint's output)."""
    require_checkpoint("kitaru.load()")
    ctx = current_execution.get()
    assert ctx is not None
    source = ctx.store.require_execution(exec_id)
    found = ctx.store.list_artifacts(source.id, name=name)
    if not found:
        raise KitaruUsageError(
            f"execution {source.id} has no artifact named {name!r}; "
            f"`kitaru executions get {source.id}` lists its checkpoints"
        )
    # Its bytes are in the artifact store of the stack that execution ran on.
    stack = ctx.stack if source.stack == ctx.stack.name else get_stack(source.stack)
    return stack.artifacts.read(found[-1])


def aload(exec_id: str, name: str) -> Awaitable[Any]:
    """``load`` for ``async def`` checkpoints: ``await kitaru.aload(exec_id, name)``
    reads the bytes in a thread, so the event loop goes on meanwhile."""
    import asyncio  # only async code pays for importing it

    require_checkpoint("kitaru.aload()")
    return asyncio.to_thread(load, exec_id, name)


def log(**metadata: Any) -> None:
    """Attach metadata to the running checkpoint, or to the execution from the flow body."""
    frame = current_checkpoint.get()
    if frame is not None:
        frame.metadata.update(metadata)
        return
    ctx = current_execution.get()
    if ctx is None:
        raise KitaruContextError(
            "kitaru.log() was called outside a flow; call it in a flow body or a checkpoint"
        )
    if not ctx.dry_run:  # (``executions upgrade --dry-run`` records nothing)
        ctx.store.merge_execution_metadata(ctx.exec_id, metadata)
