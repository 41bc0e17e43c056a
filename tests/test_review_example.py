"""The seed example end to end, with real processes: run, wait, input, resume, replay, diff."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env
from kitaru import KitaruClient, diff

EXAMPLE = Path(__file__).parent.parent / "examples" / "review_flow.py"


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return tmp_path / "research-runs.txt"


MOCK = "Durable agents never pay twice for a step."


def kitaru(counter: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(REVIEW_FLOW_COUNTER=str(counter), KITARU_LLM_MOCK_RESPONSE=MOCK),
    )


def wait_for_status(exec_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while KitaruClient().executions.get(exec_id).status != status:
        assert time.monotonic() < deadline, KitaruClient().executions.logs(exec_id)
        time.sleep(0.1)


def test_review_flow_waits_takes_input_from_the_cli_and_completes(counter: Path) -> None:
    started = kitaru(
        counter, "run", f"{EXAMPLE}:review", "--arg", "topic=durable agents", "-o", "json"
    )
    assert started.returncode == 0, started.stderr
    exec_id = json.loads(started.stdout)["exec_id"]
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "waiting"
    assert execution.lease_owner is None  # the run process exited; nothing holds it
    assert execution.pending_wait is not None
    assert execution.pending_wait.question == "Approve draft?"

    refused = kitaru(
        counter, "executions", "input", exec_id, "--wait", "approve_draft", "--value", '"yes"'
    )
    assert refused.returncode == 1
    assert "must be bool" in refused.stderr and "Nothing was stored" in refused.stderr
    assert KitaruClient().executions.get(exec_id).status == "waiting"
    assert KitaruClient().artifacts.list(exec_id, name="approve_draft") == []

    given = kitaru(
        counter, "executions", "input", exec_id, "--wait", "approve_draft", "--value", "true"
    )
    assert given.returncode == 0, given.stderr
    wait_for_status(exec_id, "completed")
    execution = KitaruClient().executions.get(exec_id)
    assert execution.result["published"] is True
    assert MOCK in execution.result["text"]
    assert [c.checkpoint for c in execution.llm_calls] == ["research", "draft"]
    assert counter.read_text().split() == ["research", "draft", "publish"]  # each once
    log = KitaruClient().executions.logs(exec_id)
    assert "waiting for input 'approve_draft'" in log
    assert "runner: execution" in log and "is completed" in log


def test_replay_with_an_override_and_the_diff_of_the_two_runs(counter: Path) -> None:
    first = json.loads(
        kitaru(counter, "run", f"{EXAMPLE}:review", "--arg", "topic=agents", "-o", "json").stdout
    )["exec_id"]
    assert (
        kitaru(counter, "executions", "input", first, "--value", "true", "--no-resume").returncode
        == 0
    )
    resumed = kitaru(counter, "executions", "resume", first)
    assert resumed.returncode == 0, resumed.stderr

    replayed = kitaru(
        counter,
        "executions",
        "replay",
        first,
        "--from",
        "draft",
        "--override",
        'checkpoint.research=["a single, better note"]',
        "-o",
        "json",
    )
    assert replayed.returncode == 0, replayed.stderr
    second = json.loads(replayed.stdout)
    assert second["original_exec_id"] == first
    assert second["status"] == "waiting"  # the wait is reached again, so it waits again
    kitaru(counter, "executions", "input", second["exec_id"], "--value", "true", "--no-resume")
    assert kitaru(counter, "executions", "resume", second["exec_id"]).returncode == 0

    result = KitaruClient().executions.get(second["exec_id"]).result
    assert "a single, better note" in result["text"]
    # the replay did not research again; it drafted and published anew
    assert counter.read_text().split() == ["research", "draft", "publish", "draft", "publish"]

    comparison = diff(first, second["exec_id"])
    assert comparison.by_name() == {
        "memory.get:reviews": "same",  # copied from the first run's journal
        "research": "changed",
        "draft": "changed",
        "approve_draft": "same",
        "memory.set:reviews": "same",
        "publish": "changed",
    }
    research = comparison.checkpoints[1]
    assert '+  "a single, better note"' in research.diff
    shown = kitaru(counter, "executions", "diff", first, second["exec_id"], "-o", "json")
    assert [c["status"] for c in json.loads(shown.stdout)["checkpoints"]] == [
        "same",
        "changed",
        "changed",
        "same",
        "same",
        "changed",
    ]


def test_bad_replays_are_refused_before_anything_runs(counter: Path) -> None:
    first = json.loads(
        kitaru(counter, "run", f"{EXAMPLE}:review", "--arg", "topic=x", "-o", "json").stdout
    )["exec_id"]
    unknown = kitaru(counter, "executions", "replay", first, "--from", "polish")
    assert unknown.returncode == 1
    assert "no completed checkpoint named 'polish'" in unknown.stderr
    assert "research" in unknown.stderr
    bad_override = kitaru(
        counter, "executions", "replay", first, "--from", "draft", "--override", "checkpoint.nope=1"
    )
    assert bad_override.returncode == 1 and "'nope'" in bad_override.stderr
    assert len(KitaruClient().executions.list()) == 1  # nothing was created


def test_input_and_a_concurrent_resume_still_run_it_once(counter: Path, tmp_path: Path) -> None:
    started = kitaru(counter, "run", f"{EXAMPLE}:review", "--arg", "topic=x", "-o", "json")
    exec_id = json.loads(started.stdout)["exec_id"]
    env = subprocess_env(REVIEW_FLOW_COUNTER=str(counter), KITARU_LLM_MOCK_RESPONSE=MOCK)
    given = subprocess.Popen(  # resumes in a background worker...
        [sys.executable, "-m", "kitaru", "executions", "input", exec_id, "--value", "true"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    racers = [  # ...while two more processes try to resume it themselves
        subprocess.Popen(
            [sys.executable, "-m", "kitaru", "executions", "resume", exec_id],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    assert given.wait(timeout=60) == 0
    for racer in racers:
        racer.wait(timeout=60)
    wait_for_status(exec_id, "completed")
    execution = KitaruClient().executions.get(exec_id)
    assert counter.read_text().split() == ["research", "draft", "publish"]  # each once
    assert [c.name for c in execution.checkpoints] == [
        "memory.get:reviews",
        "research",
        "draft",
        "approve_draft",
        "memory.set:reviews",
        "publish",
    ]
