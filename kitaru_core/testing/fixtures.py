"""pytest fixtures for plugin tests: ``pytest_plugins = ["kitaru_core.testing.fixtures"]``.

``kitaru_home`` (autouse) gives every test its own Kitaru home (metadata store,
artifacts, active stack) and its own user home, so tests never see each other's
executions or your own, and never write into your home.
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
    "KITARU_SERVER_URL",
    "KITARU_TOKEN",
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


def isolate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user's home and Kitaru's at folders of this test: nothing a test does
    lands in the real ones (a signing key, a config file, a cloud SDK's cache)."""
    user_home = tmp_path / "home"
    user_home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(user_home))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "kitaru-home"
    monkeypatch.setenv("KITARU_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def kitaru_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test that can see this fixture (a conftest that imports it) gets it."""
    home = isolate_home(tmp_path, monkeypatch)
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
