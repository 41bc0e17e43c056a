"""Registered stacks and the active one.

Stacks are registered in the metadata store, so everyone sharing a database shares
them; which one is active is per user (a file in the Kitaru home), and ``KITARU_STACK``
overrides it for one process. The built-in ``local`` stack always exists.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from kitaru_core.errors import KitaruStackError
from kitaru_core.private_files import write_private
from kitaru_core.settings import Settings, load_settings
from kitaru_core.stack import (
    LOCAL_DEFINITION,
    LOCAL_STACK,
    Stack,
    StackDefinition,
    check_definition,
)
from kitaru_core.store.metadata_store import get_store


def _active_file(settings: Settings) -> Path:
    return settings.home / "active-stack"


def active_stack_name(settings: Settings | None = None, explicit: str | None = None) -> str:
    settings = settings or load_settings()
    if explicit or settings.stack:
        return explicit or settings.stack  # type: ignore[return-value]
    try:
        return _active_file(settings).read_text(encoding="utf-8").strip() or LOCAL_STACK
    except FileNotFoundError:
        return LOCAL_STACK


def load_definition(name: str) -> StackDefinition:
    if name == LOCAL_STACK:
        return LOCAL_DEFINITION
    found = get_store().stacks.get(name)
    if found is None:
        known = ", ".join([LOCAL_STACK, *get_store().stacks.names()])
        origin = (
            " (from the environment variable KITARU_STACK)"
            if name == os.environ.get("KITARU_STACK")
            else ""
        )
        raise KitaruStackError(
            f"no stack named {name!r}{origin} (stacks: {known}); register one with "
            "`kitaru stack register FILE.yaml`"
        )
    definition, source = found
    return StackDefinition.from_mapping(definition, source or f"registered stack {name}")


_stacks: dict[tuple[str, Settings], Stack] = {}
_lock = threading.Lock()


def get_stack(name: str | None = None, settings: Settings | None = None) -> Stack:
    """The named stack, else the active one; its components are built on first use."""
    settings = settings or load_settings()
    name = active_stack_name(settings, name)
    key = (name, settings)
    stack = _stacks.get(key)
    if stack is None:
        with _lock:
            stack = _stacks.get(key)
            if stack is None:
                stack = _stacks[key] = Stack(load_definition(name), settings)
    return stack


def reset_stack_cache() -> None:
    with _lock:
        _stacks.clear()


def register(path: str | Path, *, activate: bool = False) -> StackDefinition:
    """Check a stack file (flavors, fields) and register it; nothing is stored on error."""
    definition = StackDefinition.from_file(path)
    if definition.name == LOCAL_STACK:
        raise KitaruStackError(
            f"stack file {path}: 'local' is the built-in stack; give your stack another name"
        )
    check_definition(definition)
    get_store().stacks.save(definition.name, definition.to_mapping(), str(Path(path).resolve()))
    reset_stack_cache()
    if activate:
        activate_stack(definition.name)
    return definition


def activate_stack(name: str) -> None:
    load_definition(name)  # it must exist
    write_private(_active_file(load_settings()), name + "\n")


def delete_stack(name: str, *, force: bool = False) -> None:
    if name == LOCAL_STACK:
        raise KitaruStackError("the built-in 'local' stack cannot be deleted")
    if active_stack_name() == name:
        raise KitaruStackError(
            f"stack {name!r} is active; activate another first (`kitaru stack activate local`)"
        )
    unfinished = get_store().unfinished_on_stack(name)
    if unfinished and not force:
        raise KitaruStackError(
            f"stack {name!r} has {len(unfinished)} execution(s) still running or waiting "
            f"({', '.join(unfinished[:3])}{', ...' if len(unfinished) > 3 else ''}); they "
            "could not resume without it. Finish or cancel them, or pass --force"
        )
    if not get_store().stacks.delete(name):
        load_definition(name)  # raises the "no stack named" error
    reset_stack_cache()


def stack_names() -> list[str]:
    return [LOCAL_STACK, *get_store().stacks.names()]


def validate_file(path: str | Path) -> Stack:
    """Everything ``register`` checks, that every secret reference resolves, and that
    the orchestrator can run executions where it would (a cluster it can reach)."""
    stack = check_definition(StackDefinition.from_file(path), resolve_references=True)
    stack.orchestrator.check()
    return stack
