"""What a newcomer hits in a first session, each answered in one line that says what to
do. Real ``kitaru`` processes throughout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import flows
import worker_flows as wf
from conftest import PG_URL, ROOT, error_line, kitaru_cli, subprocess_env
from kitaru import KitaruClient

SCRIPT = """
from kitaru import flow


@flow
def hello() -> str:
    return "hi"


@flow
def other() -> int:
    return 1
"""


def table_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]


# -- kitaru run: a new run's errors speak of the new run ---------------------------------


def test_run_names_a_missing_file_or_the_flows_a_file_defines(tmp_path: Path) -> None:
    (tmp_path / "myflows.py").write_text(SCRIPT)
    missing = error_line(kitaru_cli("run", "nope.py:hello", cwd=tmp_path))
    assert "there is no file nope.py" in missing and "resume" not in missing
    no_flow = error_line(kitaru_cli("run", "myflows.py:nope", cwd=tmp_path))
    assert no_flow == (
        "error: myflows.py has no flow named 'nope'; it defines these flows: hello, other"
    )
    as_module = error_line(kitaru_cli("run", "myflows:nope", cwd=tmp_path))
    assert "it defines these flows: hello, other" in as_module
    no_colon = error_line(kitaru_cli("run", "myflows.py", cwd=tmp_path))
    assert "write FILE.py:FLOW or MODULE:FLOW" in no_colon
    assert kitaru_cli("run", "myflows.py:hello", cwd=tmp_path).stdout.endswith("result: hi\n")


# -- the database URL --------------------------------------------------------------------


def test_other_database_schemes_are_refused_in_one_line() -> None:
    for url in ("mysql://root@localhost/kitaru", "mongodb://localhost/kitaru"):
        line = error_line(kitaru_cli("executions", "list", KITARU_DATABASE_URL=url))
        assert f"starts with {url.split('://')[0]}://" in line
        assert "postgresql://user:password@host:5432/db" in line and "unset it" in line


@pytest.mark.skipif(not PG_URL, reason="needs the PostgreSQL server")
def test_postgres_scheme_is_postgresql() -> None:
    url = os.environ["KITARU_DATABASE_URL"]  # this test's own schema
    flows.logs_metadata.run(3)  # type: ignore[attr-defined]
    spelled = "postgres://" + url.partition("://")[2]
    listed = kitaru_cli("executions", "list", "-o", "json", KITARU_DATABASE_URL=spelled)
    assert listed.returncode == 0, listed.stderr
    assert [e["flow_name"] for e in json.loads(listed.stdout)] == ["logs_metadata"]


# -- stack files: a flavor typo ----------------------------------------------------------


def test_a_flavor_typo_suggests_the_installed_flavor_once(tmp_path: Path) -> None:
    stack = tmp_path / "typo.yaml"
    stack.write_text(
        "name: typo\nartifact_store:\n  flavor: locla\norchestrator:\n  flavor: locla\n"
    )
    line = error_line(kitaru_cli("stack", "validate", str(stack)))
    assert "did you mean 'local'?" in line
    assert line.count("'locla'") == 1 and "artifact_store, orchestrator" in line
    assert "Install" not in line and "install" not in line
    assert line.endswith(f"correct the flavor name in {stack}")


# -- kitaru serve on a port in use -------------------------------------------------------


def test_serve_on_a_port_in_use_says_so_before_announcing_anything() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = kitaru_cli("serve", "--port", str(port), "--insecure-no-auth", timeout=30)
    assert proc.stdout == ""  # no banner
    assert error_line(proc) == (
        f"error: port {port} on 127.0.0.1 is already in use (another `kitaru serve`?): stop "
        "what holds it, or serve on another port with --port"
    )


# -- executions that nothing will continue -----------------------------------------------


def test_a_sleep_with_no_worker_says_to_start_one() -> None:
    ran = kitaru_cli("run", "worker_flows:napper", "--arg", "hours=1")
    assert ran.returncode == 0, ran.stderr
    exec_id = ran.stdout.split()[0]
    assert (
        "note: no worker is running to wake it when its timer is due: start `kitaru worker`"
        in ran.stdout
    )
    assert "stalled: no worker is running" in kitaru_cli("executions", "get", exec_id).stdout


def test_a_killed_run_with_no_worker_names_resume_and_the_worker() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import worker_flows as wf; wf.three.run(1, exec_id='lost')"],
        env=subprocess_env(KITARU_TEST_CRASH_AT="work1"),
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    get = kitaru_cli("executions", "get", "lost", COLUMNS="200").stdout
    assert "running" in get
    assert "which ran it, died" in get
    assert "continue it with `kitaru executions resume lost`, or start `kitaru worker`" in get
    resumed = kitaru_cli("executions", "resume", "lost")
    assert resumed.returncode == 0 and "completed" in resumed.stdout
    assert "stalled" not in kitaru_cli("executions", "get", "lost").stdout


# -- plugin commands, secrets, tables and values ----------------------------------------


def test_a_plugin_command_without_its_plugin_names_the_package() -> None:
    proc = kitaru_cli("kubernetes", "manifests", KITARU_DISABLE_PLUGINS="kubernetes")
    line = error_line(proc)
    assert "`kitaru kubernetes` comes with the kitaru-kubernetes plugin" in line
    assert "pip install" in line and "kitaru-kubernetes" in line


def test_a_piped_secret_is_read_quietly() -> None:
    proc = kitaru_cli("secrets", "set", "openai_api_key", stdin="sk-piped-123\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "Value" not in proc.stdout
    from kitaru_core.stack_registry import get_stack

    assert get_stack(None).secret_provider.get("openai_api_key") == "sk-piped-123"
    empty = error_line(kitaru_cli("secrets", "set", "nothing", stdin=""))
    assert "no value for secret nothing" in empty


def test_worker_status_and_plugins_list_fit_80_columns() -> None:
    subprocess.run(
        [sys.executable, "-m", "kitaru", "worker", "--once"],
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
    )
    for args in (("worker", "status"), ("plugins", "list")):
        out = kitaru_cli(*args, COLUMNS="80").stdout
        assert table_lines(out) and all(len(line) <= 80 for line in table_lines(out)), out


def test_plain_output_prints_json_values_not_python_reprs() -> None:
    memories = KitaruClient().memories
    memories.set("config", {"a": 1, "none": None})
    memories.set("greeting", "hello")
    listed = kitaru_cli("memory", "list", COLUMNS="120").stdout
    assert '{"a": 1, "none": null}' in listed and '"hello"' in listed
    assert "{'a'" not in listed and "None" not in listed and "'hello'" not in listed
    assert kitaru_cli("memory", "get", "config").stdout.strip() == '{"a": 1, "none": null}'


def test_ids_are_whole_or_cut_in_the_middle_keeping_their_ends() -> None:
    for region in ("eu", "us"):
        wf.three.run(1, exec_id=f"nightly-report-2026-12-01-{region}")
    wide = kitaru_cli("executions", "list", COLUMNS="200").stdout
    assert "nightly-report-2026-12-01-eu" in wide and "nightly-report-2026-12-01-us" in wide
    narrow = kitaru_cli("executions", "list", COLUMNS="60").stdout
    rows = [line for line in table_lines(narrow) if "three" in line]
    assert len(rows) == 2 and rows[0] != rows[1]
    assert {r.split("│")[1].strip()[-2:] for r in rows} == {"eu", "us"}
    line = error_line(kitaru_cli("executions", "get", "nightly"))
    assert "nightly-report-2026-12-01-eu, nightly-report-2026-12-01-us" in line


def test_worker_status_shows_a_recovery_within_seconds(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import worker_flows as wf; wf.three.run(1, exec_id='crashed')"],
        env=subprocess_env(KITARU_TEST_CRASH_AT="work1"),
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    worker = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "worker", "--poll", "0.2"],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        shown = ""
        while "recovered 1" not in shown and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = kitaru_cli("worker", "status", COLUMNS="120").stdout
        assert "recovered 1" in shown
        assert worker.poll() is None  # it is still running: the count came with a beat
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


# -- the demo ----------------------------------------------------------------------------


def test_the_demo_leaves_no_temporary_home_behind(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = subprocess_env(TMPDIR=str(temporary))
    env.pop("KITARU_HOME")
    env.pop("KITARU_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "crash_demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "completed" in proc.stdout
    assert list(temporary.iterdir()) == []
