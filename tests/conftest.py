"""Every test gets its own Kitaru home and its own database.

The suite runs against SQLite by default and against PostgreSQL when
``KITARU_TEST_DATABASE_URL`` names a server (``nox -s tests`` runs both): each test
then gets a schema of its own in that database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).parent
PG_URL = os.environ.get("KITARU_TEST_DATABASE_URL", "")


def pytest_report_header(config: pytest.Config) -> str:
    return f"kitaru metadata store under test: {'postgresql' if PG_URL else 'sqlite'}"


@pytest.fixture(autouse=True)
def kitaru_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from kitaru_core.plugins import reset_plugins
    from kitaru_core.stack_registry import reset_stack_cache
    from kitaru_core.store.metadata_store import reset_store_cache

    home = tmp_path / "kitaru-home"
    monkeypatch.setenv("KITARU_HOME", str(home))
    for name in (
        "KITARU_DATABASE_URL",
        "KITARU_DURABILITY",
        "KITARU_STACK",
        "KITARU_LOAD_PLUGINS",
        "KITARU_DISABLE_PLUGINS",
        "KITARU_PLUGINS_STRICT",
        "KITARU_INLINE_ARTIFACT_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)
    schema = None
    if PG_URL:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        _pg(f"CREATE SCHEMA {schema}")
        monkeypatch.setenv("KITARU_DATABASE_URL", f"{PG_URL}?options=-csearch_path%3D{schema}")
    reset_store_cache()
    reset_stack_cache()
    reset_plugins()
    yield home
    reset_store_cache()
    reset_stack_cache()
    reset_plugins()
    if schema:
        _pg(f"DROP SCHEMA {schema} CASCADE")


def _pg(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def run_python() -> Any:
    """Run a Python script in a fresh process with the test's environment."""

    def run(
        *args: str, check: bool = True, timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=subprocess_env(),
            **kwargs,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env
