"""The active stack: which artifact store and orchestrator an execution uses.

Only the built-in ``local`` stack exists until stack files and plugins arrive; an
execution records its stack's name so its artifacts are always read from the right
store, whichever stack is active later.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from kitaru_core.artifacts import Artifacts
from kitaru_core.components.artifact_store import ArtifactStore
from kitaru_core.components.orchestrator import Orchestrator
from kitaru_core.errors import KitaruStackError
from kitaru_core.settings import Settings, load_settings

LOCAL_STACK = "local"


@dataclass(frozen=True)
class Stack:
    name: str
    artifact_store: ArtifactStore
    orchestrator: Orchestrator
    artifacts: Artifacts


def active_stack_name(settings: Settings | None = None, explicit: str | None = None) -> str:
    settings = settings or load_settings()
    return explicit or settings.stack or LOCAL_STACK


def get_stack(name: str | None = None, settings: Settings | None = None) -> Stack:
    settings = settings or load_settings()
    return _build_stack(active_stack_name(settings, name), settings)


@functools.cache
def _build_stack(name: str, settings: Settings) -> Stack:
    if name != LOCAL_STACK:
        raise KitaruStackError(
            f"no stack named {name!r}; only the built-in 'local' stack exists here. "
            "Unset KITARU_STACK or pass stack='local'"
        )
    from kitaru_core.builtin.local_artifact_store import LocalArtifactStore
    from kitaru_core.builtin.local_orchestrator import LocalOrchestrator

    store = LocalArtifactStore(settings.home / "artifacts", fsync=settings.durability == "full")
    return Stack(
        name=LOCAL_STACK,
        artifact_store=store,
        orchestrator=LocalOrchestrator(),
        artifacts=Artifacts(store, inline_limit=settings.inline_artifact_bytes),
    )


def reset_stack_cache() -> None:
    _build_stack.cache_clear()
