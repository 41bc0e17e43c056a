"""Processes that die: resume by id in a fresh process, one runner at a time, divergence."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env
from kitaru import KitaruClient
from kitaru_core.errors import KitaruStateError


@pytest.fixture
def effects_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects.txt"
    monkeypatch.setenv("KITARU_TEST_EFFECTS", str(path))
    return path


def read_effects(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


START = "import sys, flows; h = flows.{flow}.run({args}); print(h.exec_id)"


def start_flow(
    run_python: Any, flow: str, args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", START.format(flow=flow, args=args)],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=60,
    )


def kitaru_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=60,
    )


def only_execution() -> str:
    [execution] = KitaruClient().executions.list()
    return execution.exec_id


def test_a_killed_execution_resumes_in_a_new_process_without_rerunning_completed_work(
    run_python: Any, effects_file: Path
) -> None:
    proc = start_flow(run_python, "steps", "6", KITARU_TEST_CRASH_AT="after:3")
    assert proc.returncode == -9
    exec_id = only_execution()
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "running"  # nobody recorded an end: the process died
    assert [c.name for c in execution.checkpoints] == ["numbered"] * 3
    assert read_effects(effects_file) == ["step0", "step1", "step2", "step3"]

    resumed = kitaru_cli("executions", "resume", exec_id, "--output", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["result"] == [0, 1, 4, 9, 16, 25]
    # steps 0-2 were recorded, so they never ran again; step 3 died before its record
    assert read_effects(effects_file) == [
        "step0",
        "step1",
        "step2",
        "step3",
        "step3",
        "step4",
        "step5",
    ]
    assert KitaruClient().executions.get(exec_id).runs == 2


def test_two_concurrent_resumes_run_the_execution_once(run_python: Any, effects_file: Path) -> None:
    start_flow(run_python, "steps", "8", KITARU_TEST_CRASH_AT="after:1")
    exec_id = only_execution()
    env = subprocess_env(KITARU_TEST_STEP_SLEEP="0.1")
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "kitaru", "executions", "resume", exec_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in racers]  # type: ignore[union-attr]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 1], outcomes
    loser_stderr = next(err for code, _, err in outcomes if code == 1)
    assert "already being run by process" in loser_stderr or "already completed" in loser_stderr
    after_crash = read_effects(effects_file)[2:]
    assert after_crash == ["step1", "step2", "step3", "step4", "step5", "step6", "step7"]
    assert KitaruClient().executions.get(exec_id).status == "completed"


def test_a_live_runner_blocks_a_resume_in_this_process(effects_file: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", START.format(flow="steps", args="4")],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(KITARU_TEST_STEP_SLEEP="0.3"),
    )
    try:
        deadline = time.monotonic() + 20
        while not read_effects(effects_file) and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(KitaruStateError, match="already being run by process"):
            KitaruClient().executions.resume(only_execution())
    finally:
        proc.wait(timeout=30)
    assert KitaruClient().executions.get(only_execution()).status == "completed"


def test_a_lease_held_by_a_dead_process_is_taken_over(effects_file: Path) -> None:
    proc = start_flow(None, "steps", "3", KITARU_TEST_CRASH_AT="before:1")
    assert proc.returncode == -9
    exec_id = only_execution()
    assert KitaruClient().executions.get(exec_id).lease_owner is not None
    assert KitaruClient().executions.resume(exec_id).wait() == [0, 1, 4]


def test_divergence_names_position_and_checkpoints_and_is_not_terminal(effects_file: Path) -> None:
    proc = start_flow(None, "reorderable", "'normal'", KITARU_TEST_CRASH_AT="middle")
    assert proc.returncode == -9
    exec_id = only_execution()

    swapped = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_ORDER="swapped")
    assert swapped.returncode == 1
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "failed"
    assert execution.error is not None and execution.error["divergence"] is True
    message = execution.error["message"]
    assert "position 0" in message and "'fetch'" in message and "'summarize'" in message
    assert "kitaru executions retry" in message

    fixed = kitaru_cli("executions", "retry", exec_id, "--output", "json")
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["result"] == ["notes on a", "B"]
    assert read_effects(effects_file) == ["fetch", "summarize"]


def test_changed_arguments_are_not_divergence(effects_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    proc = start_flow(None, "fragile", repr(str(marker)))
    assert proc.returncode == 0
    exec_id = only_execution()
    assert KitaruClient().executions.get(exec_id).status == "failed"
    marker.touch()
    assert KitaruClient().executions.retry(exec_id).wait() == "notes on a / recovered"
    assert read_effects(effects_file) == ["fetch", "flaky", "flaky"]


@pytest.mark.parametrize("retried_by", ["client", "dispatch"])
def test_a_retry_of_a_flow_without_cache_does_every_step_again(
    effects_file: Path, tmp_path: Path, retried_by: str
) -> None:
    """``@flow(cache=False)``: a retry runs its checkpoints again, whether this process
    retries it or it is handed to a runner elsewhere (the server's and Kubernetes' way),
    while the answer its wait was given stays."""
    import flows
    from kitaru_core.runtime.orchestration import claim_for_retry

    marker = tmp_path / "fixed"
    handle = flows.fragile_fresh.run(str(marker))
    client = KitaruClient()
    client.executions.input(handle.exec_id, wait="go", value=True)
    deadline = time.monotonic() + 30
    while client.executions.get(handle.exec_id).status != "failed":
        assert time.monotonic() < deadline, client.executions.get(handle.exec_id).status
        time.sleep(0.02)
    assert read_effects(effects_file) == ["fetch", "flaky"]
    marker.touch()
    if retried_by == "client":
        retried = client.executions.retry(handle.exec_id)
    else:
        assert claim_for_retry(handle.exec_id)
        retried = client.executions.resume(handle.exec_id)
    assert retried.wait() == "notes on a / recovered"
    assert read_effects(effects_file) == ["fetch", "flaky", "fetch", "flaky"]
    assert "retrying with cache=False: 2 recorded step(s)" in client.executions.logs(handle.exec_id)


def test_a_flow_in_a_script_is_resumed_by_path_without_running_its_main_block(
    tmp_path: Path, effects_file: Path
) -> None:
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent("""
        import os, signal, sys
        from dataclasses import dataclass
        from kitaru import checkpoint, flow

        @dataclass
        class Note:
            text: str

        @checkpoint
        def draft(topic: str) -> Note:
            with open(os.environ["KITARU_TEST_EFFECTS"], "a") as f:
                f.write("draft\\n")
            return Note(f"draft about {topic}")

        @checkpoint
        def polish(note: Note) -> str:
            if os.environ.get("CRASH"):
                os.kill(os.getpid(), signal.SIGKILL)
            return note.text.title()

        @flow
        def write(topic: str) -> str:
            return polish(draft(topic))

        if __name__ == "__main__":
            print("main block ran", file=sys.stderr)
            write.run("durability")
    """)
    )
    crashed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=subprocess_env(CRASH="1"),
        cwd=tmp_path,
    )
    assert crashed.returncode == -9 and "main block ran" in crashed.stderr
    exec_id = only_execution()
    resumed = kitaru_cli("executions", "resume", exec_id)
    assert resumed.returncode == 0, resumed.stderr
    assert "main block ran" not in resumed.stderr + resumed.stdout
    assert KitaruClient().executions.get(exec_id).result == "Draft About Durability"
    assert read_effects(effects_file) == ["draft"]


def test_cancel_stops_an_execution_and_it_cannot_be_resumed(effects_file: Path) -> None:
    proc = start_flow(None, "steps", "3", KITARU_TEST_CRASH_AT="before:1")
    assert proc.returncode == -9
    exec_id = only_execution()
    cancelled = kitaru_cli("executions", "cancel", exec_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    with pytest.raises(KitaruStateError, match="cancelled"):
        KitaruClient().executions.resume(exec_id)
    with pytest.raises(KitaruStateError, match="already ended"):
        KitaruClient().executions.cancel(exec_id)


def test_a_running_execution_notices_cancellation_at_its_next_checkpoint(
    effects_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitaru_core.runtime import lease

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from kitaru_core.runtime import lease; lease.HEARTBEAT_INTERVAL = 0.05; "
            + START.format(flow="steps", args="40"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(KITARU_TEST_STEP_SLEEP="0.05"),
    )
    deadline = time.monotonic() + 20
    while len(read_effects(effects_file)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    KitaruClient().executions.cancel(only_execution())
    assert proc.wait(timeout=30) == 0
    assert lease.HEARTBEAT_INTERVAL > 0
    execution = KitaruClient().executions.get(only_execution())
    assert execution.status == "cancelled"
    assert len(read_effects(effects_file)) < 40


def test_an_execution_recorded_before_steps_had_paths_resumes_by_arrival(
    run_python: Any, effects_file: Path
) -> None:
    """An execution started by a Kitaru before journal paths (no ``task_paths`` option,
    no paths in its journal) is resumed as it was recorded: by order of arrival."""
    from kitaru_core.runtime.scopes import TASK_PATHS
    from kitaru_core.store.metadata_store import get_store

    proc = start_flow(run_python, "steps", "6", KITARU_TEST_CRASH_AT="after:3")
    assert proc.returncode == -9
    exec_id = only_execution()
    store = get_store()
    record = store.require_execution(exec_id)
    options = {k: v for k, v in record.options.items() if k != TASK_PATHS}
    store.db.execute(
        "UPDATE executions SET options = :options WHERE id = :id",
        {"options": json.dumps(options), "id": exec_id},
    )
    recorded = {c.name for c in KitaruClient().executions.get(exec_id).checkpoints}
    assert recorded == {"numbered"}
    resumed = kitaru_cli("executions", "resume", exec_id, "--output", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["result"] == [0, 1, 4, 9, 16, 25]
    ran = collections.Counter(read_effects(effects_file))
    assert ran == {"step0": 1, "step1": 1, "step2": 1, "step3": 2, "step4": 1, "step5": 1}
    assert TASK_PATHS not in store.require_execution(exec_id).options
