"""pytest fixtures for plugin tests: ``pytest_plugins = ["kitaru_core.testing.fixtures"]``.

``kitaru_home`` gives every test its own Kitaru home (metadata store, artifacts, active
stack), so tests never see each other's executions or your own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ISOLATED_VARIABLES = (
    "KITARU_DATABASE_URL",
    "KITARU_DURABILITY",
    "KITARU_STACK",
    "KITARU_LOAD_PLUGINS",
    "KITARU_DISABLE_PLUGINS",
    "KITARU_PLUGINS_STRICT",
    "KITARU_INLINE_ARTIFACT_BYTES",
    "KITARU_LLM_MOCK_RESPONSE",
    "KITARU_DEFAULT_MODEL",
)


def reset_caches() -> None:
    """Forget open stores, built stacks, loaded plugins and the memory scope chosen
    outside flows (the environment changed)."""
    from kitaru_core.plugins import reset_plugins
    from kitaru_core.runtime.memory import memory
    from kitaru_core.stack_registry import reset_stack_cache
    from kitaru_core.store.metadata_store import reset_store_cache

    reset_store_cache()
    reset_stack_cache()
    reset_plugins()
    memory.configure()  # the default scope outside flows, as in a new process


@pytest.fixture
def kitaru_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "kitaru-home"
    monkeypatch.setenv("KITARU_HOME", str(home))
    for name in ISOLATED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    reset_caches()
    yield home
    reset_caches()


def run_kitaru(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The ``kitaru`` command in a fresh process, with this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
