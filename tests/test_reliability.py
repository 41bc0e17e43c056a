"""Faults a new user and a fault test hit: contention, killed workers, damaged and
deleted files, interrupts, scripts without a main guard. Real processes throughout."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import PG_URL, error_line, kitaru_cli, subprocess_env
from kitaru import KitaruClient
from kitaru_core.errors import KitaruBackendError
from kitaru_core.store.metadata_store import get_store


def wait_until(predicate: object, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- 1. memory under contention ---------------------------------------------------------

WRITER = """
import sys
from kitaru import KitaruClient
memories = KitaruClient().memories
for i in range(int(sys.argv[1])):
    memories.set("plainkey", i)
"""


def test_plain_memory_writes_from_8_processes_never_fail() -> None:
    KitaruClient().memories.set("plainkey", -1)  # the schema exists before the race
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, "100"],
            env=subprocess_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    errors = [w.communicate(timeout=240)[1] for w in writers]
    assert all(w.returncode == 0 for w in writers), errors
    history = KitaruClient().memories.history("plainkey")
    assert [e.version for e in history] == list(range(801, 0, -1))


# -- 2. a killed worker that stays a zombie of its caller -----------------------------

CALLER = """
import os, signal, sys, time
from kitaru import KitaruClient
from kitaru_core.store.metadata_store import get_store
exec_id = sys.argv[1]
KitaruClient().executions.input(exec_id, value=True)  # starts the worker as a child
deadline = time.time() + 30
while True:
    owner = get_store().get_execution(exec_id).lease_owner
    effects = open(os.environ["KITARU_TEST_EFFECTS"]).read() if os.path.exists(os.environ["KITARU_TEST_EFFECTS"]) else ""
    if owner and "slow_step" in effects:
        break
    assert time.time() < deadline, "the worker never ran"
    time.sleep(0.05)
os.kill(int(owner.rsplit(":", 3)[1]), signal.SIGKILL)
print("killed", flush=True)
time.sleep(120)  # a long-lived caller: a notebook, a server
"""


def test_a_killed_worker_does_not_hold_the_lease_while_its_caller_lives(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    env = {"KITARU_TEST_EFFECTS": str(effects), "KITARU_TEST_SLOW": "20"}
    started = subprocess.run(
        [sys.executable, "-c", "import flows; print(flows.approve_then_work.run().exec_id)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(**env),
        check=True,
    )
    exec_id = started.stdout.strip()
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, exec_id],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(**env),
    )
    try:
        assert caller.stdout is not None and caller.stdout.readline().strip() == "killed"
        os.environ["KITARU_TEST_SLOW"] = "0"
        try:
            assert KitaruClient().executions.resume(exec_id).wait(timeout=30) == "slept"
        finally:
            del os.environ["KITARU_TEST_SLOW"]
    finally:
        caller.kill()
        caller.wait()


# -- 3 and 4. damaged and deleted artifact files ----------------------------------------


def blob_path(home: Path, key: str) -> Path:
    record = get_store().memory.get("namespace", "default", key)
    assert record is not None and record.artifact_id is not None
    artifact = get_store().get_artifact(record.artifact_id)
    assert artifact is not None and artifact.inline is None
    return home / "artifacts" / artifact.key[:2] / artifact.key


def test_a_corrupted_blob_is_repaired_by_writing_the_same_value_again(kitaru_home: Path) -> None:
    value = "x" * 10_000
    memories = KitaruClient().memories
    memories.set("big", value)
    path = blob_path(kitaru_home, "big")
    path.write_bytes(b"garbage")
    with pytest.raises(KitaruBackendError, match="corrupted"):
        memories.get("big")

    assert memories.set("big", value) == 2
    assert memories.get("big") == value
    assert memories.get("big", version=1) == value  # the same blob: repaired for both


def test_a_deleted_artifacts_directory_is_made_again(kitaru_home: Path) -> None:
    value = "y" * 10_000
    memories = KitaruClient().memories
    memories.set("big", value)
    shutil.rmtree(kitaru_home / "artifacts")
    memories.set("big", value)  # the same blob: its directory was known to exist
    assert memories.get("big") == value
    assert blob_path(kitaru_home, "big").exists()


# -- 5. an emptied database -------------------------------------------------------------


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite database file (the PostgreSQL run has none)")
def test_an_empty_database_file_beside_old_data_is_refused(kitaru_home: Path) -> None:
    import flows

    flows.research.run("a")
    KitaruClient().memories.set("big", "z" * 10_000)
    from kitaru_core.testing.fixtures import reset_caches

    reset_caches()
    (kitaru_home / "kitaru.db").write_bytes(b"")
    for name in ("kitaru.db-wal", "kitaru.db-shm"):
        (kitaru_home / name).unlink(missing_ok=True)

    proc = kitaru_cli("executions", "list")
    line = error_line(proc)
    assert "kitaru.db is empty (0 bytes)" in line and "Restore it from a backup" in line
    assert (kitaru_home / "kitaru.db").stat().st_size == 0  # nothing was written


# -- 6. a background resume that cannot even load the flow --------------------------------

SCRIPT = """
import kitaru
from kitaru import flow

@flow
def moved() -> bool:
    return kitaru.wait(name="ok")

if __name__ == "__main__":
    print(moved.run().exec_id)
"""


def test_a_background_resume_that_cannot_load_the_flow_fails_the_execution(
    tmp_path: Path,
) -> None:
    script = tmp_path / "moved_flow.py"
    script.write_text(SCRIPT)
    exec_id = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
        timeout=60,
    ).stdout.strip()
    script.rename(tmp_path / "elsewhere.py")

    given = kitaru_cli("executions", "input", exec_id, "--value", "true")
    assert given.returncode == 0, given.stderr
    assert (
        f"resuming in the background. Follow with: kitaru executions logs {exec_id}" in given.stdout
    )

    wait_until(lambda: KitaruClient().executions.get(exec_id).status == "failed", what="failed")
    error = KitaruClient().executions.get(exec_id).error or {}
    assert "no longer exists" in error["message"]
    assert f"kitaru executions retry {exec_id}" in error["message"]


# -- 7. Ctrl-C ----------------------------------------------------------------------------


def hear_ctrl_c() -> None:
    """In the child before it runs: take SIGINT's default back. A process started in the
    background from a non-interactive shell (CI) inherits SIGINT ignored, and Python then
    never raises KeyboardInterrupt; a person's terminal never does that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_run_cancels_the_execution_and_says_how_to_go_on(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    env = subprocess_env(KITARU_TEST_EFFECTS=str(effects), KITARU_TEST_SLOW="30")
    run = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "run", "flows:slow"],
        env=env,
        preexec_fn=hear_ctrl_c,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: effects.exists() and "slow_step" in effects.read_text(), what="slow_step")
    run.send_signal(signal.SIGINT)
    _out, err = run.communicate(timeout=30)

    assert run.returncode == 130
    exec_id = KitaruClient().executions.latest().exec_id  # type: ignore[union-attr]
    lines = err.strip().splitlines()
    assert lines == [
        f"error: interrupted: execution {exec_id} is cancelled; continue it with "
        f"`kitaru executions retry {exec_id}`"
    ]
    assert KitaruClient().executions.get(exec_id).status == "cancelled"

    retried = kitaru_cli("executions", "retry", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert retried.returncode == 0 and "completed" in retried.stdout
    assert effects.read_text().split() == ["fetch", "slow_step", "slow_step"]


def test_ctrl_c_at_the_wait_prompt_leaves_the_execution_waiting() -> None:
    controller, terminal = pty.openpty()
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "kitaru", "run", "flows:needs_approval"],
            env=subprocess_env(),
            preexec_fn=hear_ctrl_c,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        prompt = ""
        while "Ctrl-C to answer later]: " not in prompt:
            prompt += run.stdout.read(1)
        time.sleep(0.3)  # the prompt is out: let the process block reading the terminal
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=30)
    finally:
        os.close(controller)
        os.close(terminal)
    assert run.returncode == 0, err
    exec_id = KitaruClient().executions.latest().exec_id  # type: ignore[union-attr]
    assert KitaruClient().executions.get(exec_id).status == "waiting"
    assert f"kitaru executions input {exec_id} --wait approve --value JSON" in out


# -- 8. a script that runs its flow at the top level -------------------------------------

UNGUARDED = """
from kitaru import checkpoint, flow
from flows import effect, maybe_crash

@checkpoint
def step(i: int) -> int:
    effect(f"s{i}")
    maybe_crash(f"c{i}")
    return i

@flow
def article() -> int:
    return step(1) + step(2)

handle = article.run()  # no `if __name__ == "__main__":` guard
print(handle.exec_id, handle.wait())
"""


def test_resuming_a_script_without_a_main_guard_starts_nothing_twice(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    effects = tmp_path / "effects.txt"
    env = {"KITARU_TEST_EFFECTS": str(effects)}
    crashed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(KITARU_TEST_CRASH_AT="c2", **env),
    )
    assert crashed.returncode == -signal.SIGKILL
    (execution,) = KitaruClient().executions.list()

    resumed = kitaru_cli("executions", "resume", execution.exec_id, **env)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout and "result: 3" in resumed.stdout
    assert "starts flow 'article' at the top level of the script" in resumed.stderr
    assert "line 15" in resumed.stderr
    assert len(KitaruClient().executions.list()) == 1
    assert effects.read_text().split() == ["s1", "s2", "s2"]


# -- 9. every command against a read-only home and a damaged configuration --------------

COMMANDS = [
    ["executions", "list"],
    ["executions", "get", "EXEC"],
    ["executions", "waits"],
    ["executions", "logs", "EXEC"],
    ["executions", "input", "EXEC", "--value", "true"],
    ["executions", "resume", "EXEC"],
    ["executions", "retry", "EXEC"],
    ["executions", "cancel", "EXEC"],
    ["executions", "replay", "EXEC", "--from", "0"],
    ["executions", "diff", "EXEC", "EXEC"],
    ["run", "flows:research", "--arg", "topic=x"],
    ["memory", "list"],
    ["memory", "get", "k"],
    ["memory", "set", "k", "2"],
    ["memory", "delete", "k"],
    ["memory", "history", "k"],
    ["stack", "list"],
    ["stack", "describe"],
    ["stack", "register", "STACK"],
    ["stack", "activate", "local"],
    ["stack", "validate", "STACK"],
    ["stack", "export", "local"],
    ["stack", "delete", "other"],
    ["plugins", "list"],
    ["secrets", "set", "openai_api_key", "--value", "sk-x"],
    ["secrets", "list"],
    ["secrets", "delete", "openai_api_key"],
    ["model", "register", "fast", "--model", "openai/gpt-4o-mini"],
    ["model", "list"],
    ["model", "delete", "fast"],
    ["version"],
]


def check_every_command(exec_id: str, stack: Path, runner: list[str]) -> list[str]:
    problems = []
    for command in COMMANDS:
        args = [str(stack) if a == "STACK" else exec_id if a == "EXEC" else a for a in command]
        proc = subprocess.run(
            [*runner, sys.executable, "-m", "kitaru", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=subprocess_env(COLUMNS="200"),
        )
        lines = proc.stderr.strip().splitlines()
        if "Traceback" in proc.stderr or (
            proc.returncode != 0 and not (len(lines) == 1 and lines[0].startswith("error: "))
        ):
            problems.append(f"kitaru {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return problems


@pytest.fixture
def populated(kitaru_home: Path, tmp_path: Path) -> tuple[str, Path]:
    import flows

    exec_id = flows.needs_approval.run().exec_id
    KitaruClient().memories.set("k", 1)
    stack = tmp_path / "other.yaml"
    stack.write_text("name: other\n")
    assert kitaru_cli("stack", "register", str(stack)).returncode == 0
    assert kitaru_cli("model", "register", "fast", "--model", "openai/x").returncode == 0
    assert kitaru_cli("secrets", "set", "openai_api_key", "--value", "sk").returncode == 0
    return exec_id, stack


@pytest.mark.skipif(bool(PG_URL), reason="a read-only SQLite home (the PostgreSQL run has none)")
def test_every_command_on_a_read_only_home_ends_in_one_line(
    kitaru_home: Path, populated: tuple[str, Path]
) -> None:
    exec_id, stack = populated
    home = str(kitaru_home)
    read_only = [
        "unshare",
        "-m",
        "sh",
        "-c",
        f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && exec "$@"',
        "read-only",
    ]
    assert check_every_command(exec_id, stack, read_only) == []


def test_every_command_with_damaged_configuration_ends_in_one_line(
    kitaru_home: Path, populated: tuple[str, Path]
) -> None:
    exec_id, stack = populated
    (kitaru_home / "models.json").write_text('{"fast": {"model": ')
    (kitaru_home / "secrets.json").write_text("[1, 2")
    (kitaru_home / "active-stack").write_text("no-such-stack\n")
    assert check_every_command(exec_id, stack, []) == []
    proc = kitaru_cli("model", "list")
    assert "models.json" in error_line(proc)


def test_deeply_nested_value_is_one_line() -> None:
    proc = kitaru_cli("memory", "set", "k", "[" * 5000 + "]" * 5000)
    assert "nested more than 200 levels" in error_line(proc)


# -- 10. environment references in model aliases -----------------------------------------


def test_an_environment_reference_in_an_alias_model_is_resolved(
    tmp_path: Path, fake_llm: object
) -> None:
    from kitaru_core.stack_registry import get_stack, register

    path = tmp_path / "env-model.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: env-model
        llm_gateway:
          flavor: litellm
          models:
            fast:
              model: "${{KITARU_TEST_MODEL}}"
              api_base: {fake_llm.api_base}  # type: ignore[attr-defined]
              api_key: "{{{{ secret.openai_api_key }}}}"
        """).replace("  # type: ignore[attr-defined]", "")
    )
    register(path, activate=True)
    get_stack().secret_provider.set("openai_api_key", "sk-test")
    proc = subprocess.run(
        [sys.executable, "-c", "import kitaru; print(kitaru.llm('hi', model='fast'))"],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(KITARU_TEST_MODEL="openai/gpt-from-env"),
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["body"]["model"] for r in fake_llm.requests] == ["gpt-from-env"]  # type: ignore[attr-defined]
    calls = get_store().llm_calls(None)  # type: ignore[arg-type]
    del calls


def test_json_files_are_readable_after_every_write(kitaru_home: Path) -> None:
    assert kitaru_cli("model", "register", "fast", "--model", "openai/x").returncode == 0
    assert json.loads((kitaru_home / "models.json").read_text()) == {"fast": {"model": "openai/x"}}
