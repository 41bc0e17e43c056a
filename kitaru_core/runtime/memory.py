"""``kitaru.memory``: typed, versioned key-value memory that flows share.

Every write appends a version (a delete appends a tombstone); values are typed
artifacts. Scopes: ``namespace`` (shared by name), ``flow`` (the default in a flow: all
executions of that flow), ``execution``, and ``key`` (in a flow with ``@flow(key=...)``:
all executions of that flow with the same key). In a flow body each call is journaled, so a
resumed execution sees the values it saw before and never writes twice; inside a
checkpoint calls run inline (the checkpoint's own record covers them).
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime.context import ExecutionContext, current_checkpoint, current_execution
from kitaru_core.runtime.step import Step
from kitaru_core.stack import Stack
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.memory_versions import JournaledWrite
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import ArtifactRecord, JournalEntry, MemoryRecord
from kitaru_core.untrusted import NAME_PATTERN, validate_name

SCOPE_TYPES = ("namespace", "flow", "execution", "key")
DEFAULT_NAMESPACE = "default"


@dataclass
class MemoryEntry:
    key: str
    version: int
    value: Any
    deleted: bool
    scope_type: str
    scope: str
    exec_id: str | None
    created_at: float


def validate_key(key: Any) -> str:
    return validate_name("memory key", key)


def validate_scope(scope_type: str, scope: str | None) -> tuple[str, str]:
    if scope_type not in SCOPE_TYPES:
        raise KitaruUsageError(
            f"memory scope type {scope_type!r} is not one of {', '.join(SCOPE_TYPES)}"
        )
    if not scope:
        raise KitaruUsageError(f"a {scope_type!r} memory scope needs a name")
    return scope_type, validate_name(f"{scope_type} memory scope", scope)


def key_scope(flow_name: str, key: str | None) -> str | None:
    """The memory scope of one key of a keyed flow: ``FLOW:KEY`` (a digest of the key
    when it holds characters a scope name cannot)."""
    if key is None:
        return None
    scope = f"{flow_name}:{key}"
    if re.fullmatch(NAME_PATTERN, scope):
        return scope
    return f"{flow_name}:sha256-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class MemoryScope:
    """Reads and writes of one scope, without journaling (what clients use). In a run,
    the store and stack are the run's own; elsewhere, the process's active ones."""

    def __init__(
        self,
        scope_type: str,
        scope: str,
        *,
        exec_id: str | None = None,
        store: MetadataStore | None = None,
        stack: Stack | None = None,
    ) -> None:
        self.scope_type, self.scope = validate_scope(scope_type, scope)
        self.exec_id = exec_id
        self.store = store or get_store()
        self.stack = stack or get_stack()

    def _entry(self, record: MemoryRecord, artifact: ArtifactRecord | None = None) -> MemoryEntry:
        value = None
        if record.artifact_id is not None:
            artifact = artifact or self.store.get_artifact(record.artifact_id)
            assert artifact is not None
            # The value's bytes are where the writer's stack put them.
            stack = self.stack if record.stack == self.stack.name else get_stack(record.stack)
            value = stack.artifacts.read(artifact)
        return MemoryEntry(
            key=record.key,
            version=record.version,
            value=value,
            deleted=record.deleted,
            scope_type=record.scope_type,
            scope=record.scope,
            exec_id=record.exec_id,
            created_at=record.created_at,
        )

    def get_entry(self, key: str, *, version: int | None = None) -> MemoryEntry | None:
        found = self.store.memory.get_with_value(
            self.scope_type, self.scope, validate_key(key), version
        )
        return self._entry(*found) if found is not None else None

    def get(self, key: str, *, version: int | None = None, default: Any = None) -> Any:
        entry = self.get_entry(key, version=version)
        return default if entry is None or entry.deleted else entry.value

    def set(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        journal: Callable[[str | None], JournaledWrite] | None = None,
        data_only: bool = False,
    ) -> int:
        """Write a new version; returns its number. ``expected_version`` makes it
        compare-and-set (``KitaruStateError`` if another write came first).
        ``data_only`` (values from outside a flow) accepts plain JSON data only."""
        artifact = self.stack.artifacts.write(
            value,
            exec_id=self.exec_id,
            name=validate_key(key),
            role="memory",
            what=f"memory value {key!r}",
            data_only=data_only,
        )
        record = self.store.memory.write(
            scope_type=self.scope_type,
            scope=self.scope,
            key=key,
            value=artifact,
            exec_id=self.exec_id,
            stack=self.stack.name,
            expected_version=expected_version,
            journal=journal(artifact.id) if journal else None,
        )
        return record.version

    def delete(
        self,
        key: str,
        *,
        expected_version: int | None = None,
        journal: Callable[[str | None], JournaledWrite] | None = None,
    ) -> int:
        """Write a tombstone version; the key's history keeps every earlier value."""
        record = self.store.memory.write(
            scope_type=self.scope_type,
            scope=self.scope,
            key=validate_key(key),
            value=None,
            exec_id=self.exec_id,
            stack=self.stack.name,
            expected_version=expected_version,
            journal=journal(None) if journal else None,
        )
        return record.version

    def list(self, prefix: str | None = None) -> builtins.list[MemoryEntry]:
        """The newest version of every key that is not deleted, by key."""
        records = self.store.memory.latest(self.scope_type, self.scope, prefix)
        return [self._entry(r) for r in records if not r.deleted]

    def history(self, key: str) -> builtins.list[MemoryEntry]:
        """Every version of ``key``, newest first, tombstones included."""
        records = self.store.memory.history(self.scope_type, self.scope, validate_key(key))
        return [self._entry(r) for r in records]


class Memory:
    """The ``kitaru.memory`` object."""

    def __init__(self) -> None:
        self._outside: tuple[str, str] = ("namespace", DEFAULT_NAMESPACE)

    def configure(self, scope: str | None = None, *, scope_type: str | None = None) -> None:
        """Choose the scope of later calls (in a flow: for that execution only)."""
        ctx = current_execution.get()
        if scope_type is None:
            scope_type = "namespace" if scope else ("flow" if ctx else "namespace")
        if scope_type not in SCOPE_TYPES:
            validate_scope(scope_type, scope)
        if scope_type == "namespace" and not scope:
            scope = DEFAULT_NAMESPACE
        if scope_type == "key" and ctx is not None and ctx.key is None and not scope:
            raise KitaruUsageError(
                f"flow {ctx.flow_name!r} has no key, so it has no key memory; declare "
                "one with @flow(key='argument name'), or choose another scope type"
            )
        if scope_type in ("flow", "execution", "key") and ctx is None and not scope:
            raise KitaruUsageError(
                f"a {scope_type!r} memory scope outside a flow needs a name: "
                f"configure(scope=..., scope_type={scope_type!r})"
            )
        if ctx is not None:
            ctx.memory_scope = (scope_type, scope)
        else:
            self._outside = (scope_type, scope or DEFAULT_NAMESPACE)

    def _scope(self, ctx: ExecutionContext | None) -> MemoryScope:
        if ctx is None:
            return MemoryScope(*self._outside)
        scope_type, named = ctx.memory_scope or ("flow", None)
        default = {
            "flow": ctx.flow_name,
            "execution": ctx.exec_id,
            "key": key_scope(ctx.flow_name, ctx.key),
        }.get(scope_type)
        return MemoryScope(
            scope_type,
            named or default or "",
            exec_id=ctx.exec_id,
            store=ctx.store,
            stack=ctx.stack,
        )

    def _journaled(
        self,
        op: str,
        key: str | None,
        compute: Callable[[MemoryScope], Any],
        *,
        awaited: bool = False,
    ) -> Any:
        """A read: one journaled step when called from a flow body, so a resumed run
        sees what it saw; inline in a checkpoint (its own record covers it).
        ``awaited``: an awaitable instead, whose store calls run in a thread."""
        ctx = current_execution.get()
        scope = self._scope(ctx)
        if ctx is None or current_checkpoint.get() is not None:
            return _in_thread(compute, scope) if awaited else compute(scope)
        name = f"memory.{op}" + (f":{key}" if key else "")
        journaled = ctx.astep if awaited else ctx.step
        return journaled(name, "memory", lambda step: step.complete(compute(scope)))

    def _journaled_write(
        self,
        op: str,
        key: str,
        write: Callable[[MemoryScope, Any], int],
        *,
        awaited: bool = False,
    ) -> Any:
        """A write from a flow body is one journaled step whose entry is committed in
        the write's own transaction: it happens exactly once per execution."""
        validate_key(key)
        ctx = current_execution.get()
        scope = self._scope(ctx)
        if ctx is None or current_checkpoint.get() is not None:

            def write_alone(scope: MemoryScope) -> None:
                write(scope, None)

            return _in_thread(write_alone, scope) if awaited else write_alone(scope)

        def run(step: Step) -> None:
            entries: builtins.list[JournalEntry] = []

            def journal(artifact_id: str | None) -> JournaledWrite:
                extra = []
                if artifact_id is None:  # a tombstone: record None as the entry's output
                    none = step.output(None)
                    extra, artifact_id = [none], none.id
                entries.append(step.entry(artifact_id))
                return JournaledWrite(entries[-1], extra, step.ctx.owner)

            write(scope, journal)
            step.ended(entries[-1])

        name = f"memory.{op}:{key}"
        if awaited:
            return ctx.astep(name, "memory", run, load=None)
        ctx.step(name, "memory", run, load=None)
        return None

    def get(self, key: str, *, version: int | None = None, default: Any = None) -> Any:
        return self._journaled("get", key, lambda s: s.get(key, version=version, default=default))

    def get_entry(self, key: str, *, version: int | None = None) -> MemoryEntry | None:
        """The value with its version (for compare-and-set), or None if never written."""
        return self._journaled("entry", key, lambda s: s.get_entry(key, version=version))

    def set(self, key: str, value: Any, *, expected_version: int | None = None) -> None:
        """Write a new version. With ``expected_version`` it is compare-and-set:
        ``KitaruStateError`` if someone else wrote first (0: the key must not exist)."""
        self._journaled_write(
            "set",
            key,
            lambda s, j: s.set(key, value, expected_version=expected_version, journal=j),
        )

    def delete(self, key: str, *, expected_version: int | None = None) -> None:
        self._journaled_write(
            "delete", key, lambda s, j: s.delete(key, expected_version=expected_version, journal=j)
        )

    def list(self, prefix: str | None = None) -> builtins.list[MemoryEntry]:
        return self._journaled("list", prefix, lambda s: s.list(prefix))

    def history(self, key: str) -> builtins.list[MemoryEntry]:
        return self._journaled("history", key, lambda s: s.history(key))

    # The same for async code: ``await kitaru.memory.aget(key)``. The journal position
    # is taken at the call (as a checkpoint's is); the store calls run in a thread.

    def aget(self, key: str, *, version: int | None = None, default: Any = None) -> Awaitable[Any]:
        return self._journaled(
            "get", key, lambda s: s.get(key, version=version, default=default), awaited=True
        )

    def aget_entry(self, key: str, *, version: int | None = None) -> Awaitable[MemoryEntry | None]:
        return self._journaled(
            "entry", key, lambda s: s.get_entry(key, version=version), awaited=True
        )

    def aset(self, key: str, value: Any, *, expected_version: int | None = None) -> Awaitable[None]:
        return self._journaled_write(
            "set",
            key,
            lambda s, j: s.set(key, value, expected_version=expected_version, journal=j),
            awaited=True,
        )

    def adelete(self, key: str, *, expected_version: int | None = None) -> Awaitable[None]:
        return self._journaled_write(
            "delete",
            key,
            lambda s, j: s.delete(key, expected_version=expected_version, journal=j),
            awaited=True,
        )

    def alist(self, prefix: str | None = None) -> Awaitable[builtins.list[MemoryEntry]]:
        return self._journaled("list", prefix, lambda s: s.list(prefix), awaited=True)

    def ahistory(self, key: str) -> Awaitable[builtins.list[MemoryEntry]]:
        return self._journaled("history", key, lambda s: s.history(key), awaited=True)


def _in_thread(function: Callable[[MemoryScope], Any], scope: MemoryScope) -> Awaitable[Any]:
    """Where nothing is journaled (outside a flow, in a checkpoint): the call alone, in
    a thread."""
    import asyncio  # only async code pays for importing it

    return asyncio.to_thread(function, scope)


memory = Memory()
