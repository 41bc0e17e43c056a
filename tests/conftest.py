"""Every test gets its own Kitaru home and its own database.

The suite runs against SQLite by default and against PostgreSQL when
``KITARU_TEST_DATABASE_URL`` names a server (``nox -s tests`` runs both): each test
then gets a schema of its own in that database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kitaru_core.stack_registry import get_stack, register
from kitaru_core.testing.fixtures import ISOLATED_VARIABLES, isolate_home, reset_caches
from kitaru_core.testing.llm_server import FakeLLM, fake_llm  # noqa: F401 (a fixture)

TESTS_DIR = Path(__file__).parent
ROOT = TESTS_DIR.parent
PG_URL = os.environ.get("KITARU_TEST_DATABASE_URL", "")


def pytest_report_header(config: pytest.Config) -> str:
    return f"kitaru metadata store under test: {'postgresql' if PG_URL else 'sqlite'}"


@pytest.fixture(autouse=True)
def kitaru_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin authors' isolation fixture, plus a PostgreSQL schema of its own."""
    home = isolate_home(tmp_path, monkeypatch)
    for name in ISOLATED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    schema = None
    if PG_URL:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        _pg(f"CREATE SCHEMA {schema}")
        # Connections named after the schema: a fault test drops this test's alone.
        monkeypatch.setenv(
            "KITARU_DATABASE_URL",
            f"{PG_URL}?options=-csearch_path%3D{schema}&application_name={schema}",
        )
    reset_caches()
    yield home
    reset_caches()
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


def run_killed(code: str, effects: Path, **env: str) -> str:
    """Run ``code`` (a flow's ``.run``) in a process that is SIGKILLed as ``env`` says
    (``KITARU_TEST_CRASH_AT``), recording effects in ``effects``; the execution's id."""
    from kitaru import KitaruClient

    crashed = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(KITARU_TEST_EFFECTS=str(effects), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr
    latest = KitaruClient().executions.latest()
    assert latest is not None
    return latest.exec_id


def kitaru_cli(
    *args: str,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 60,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """The ``kitaru`` command in a fresh process with the test's environment (plus ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=timeout,
        env=subprocess_env(**env),
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: ...`` line a refused command ends with (and it did end so)."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


SECRET_KEY = "sk-test-4f9a2b7c1d"


@pytest.fixture
def llm_stack(tmp_path: Path, fake_llm: FakeLLM) -> FakeLLM:
    """A stack whose `fast` alias points at the local server, its key in the secret provider."""
    path = tmp_path / "llm.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: llm-test
        llm_gateway:
          flavor: litellm
          backoff: 0.01
          models:
            fast:
              model: openai/gpt-4o-mini
              api_base: {fake_llm.api_base}
              api_key: "{{{{ secret.openai_api_key }}}}"
            slow:
              model: openai/gpt-4o-mini
              api_base: {fake_llm.api_base}
              api_key: "{{{{ secret.openai_api_key }}}}"
              timeout: 0.5
    """)
    )
    register(path, activate=True)
    get_stack().secret_provider.set("openai_api_key", SECRET_KEY)
    return fake_llm
