"""Child flows: a flow run or started in a flow body is a child execution, linked to its
parent; killing either and resuming runs no recorded body twice."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time

import pytest

import flows
from conftest import kitaru_cli, subprocess_env
from kitaru import KitaruClient, diff


def _effects(path: str) -> collections.Counter[str]:
    with open(path) as f:
        return collections.Counter(f.read().split())


def _until(exec_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while KitaruClient().executions.get(exec_id).status != status:
        assert time.monotonic() < deadline, KitaruClient().executions.get(exec_id).status
        time.sleep(0.05)


def test_a_flow_run_in_a_flow_body_is_a_linked_child(tmp_path: pytest.TempPathFactory) -> None:
    handle = flows.parent.run(1)
    assert handle.wait() == {"before": "before", "child": ["A1", "B1"], "after": "after"}
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [(c.name, c.kind) for c in execution.checkpoints] == [
        ("parent_step", "checkpoint"),
        ("child", "flow"),
        ("parent_step", "checkpoint"),
    ]
    [kid] = KitaruClient().executions.list(parent=handle.exec_id)
    assert kid.exec_id == f"{handle.exec_id}.1" and kid.parent_exec_id == handle.exec_id
    listed = kitaru_cli("executions", "list", "--parent", handle.exec_id, "-o", "json")
    assert [e["exec_id"] for e in json.loads(listed.stdout)] == [kid.exec_id]


def test_killing_the_parent_while_its_child_runs_then_resuming_runs_each_body_once(
    tmp_path: pytest.TempPathFactory,
) -> None:
    effects = str(tmp_path / "effects.txt")  # type: ignore[operator]
    crashed = subprocess.run(
        [sys.executable, "-c", "import flows; flows.parent.run(3)"],
        env=subprocess_env(KITARU_TEST_EFFECTS=effects, KITARU_TEST_CRASH_AT="child-between"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr
    parent = KitaruClient().executions.list(flow="parent")[0]
    child_execution = KitaruClient().executions.get(f"{parent.exec_id}.1")
    assert (parent.status, child_execution.status) == ("running", "running")  # both died
    resumed = kitaru_cli("executions", "resume", parent.exec_id, KITARU_TEST_EFFECTS=effects)
    assert resumed.returncode == 0, resumed.stderr
    done = KitaruClient().executions.get(parent.exec_id)
    assert done.status == "completed"
    assert done.result == {"before": "before", "child": ["A3", "B3"], "after": "after"}
    assert _effects(effects) == {
        "parent:before": 1,
        "child:a3": 1,
        "child:b3": 1,
        "parent:after": 1,
    }


def test_a_waiting_child_makes_its_parent_wait_and_killing_the_child_loses_nothing(
    tmp_path: pytest.TempPathFactory,
) -> None:
    effects = str(tmp_path / "effects.txt")  # type: ignore[operator]
    env = {"KITARU_TEST_EFFECTS": effects}
    started = subprocess.run(
        [sys.executable, "-c", "import flows; flows.waiting_parent.run(7)"],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    parent = KitaruClient().executions.list(flow="waiting_parent")[0]
    kid = f"{parent.exec_id}.1"
    assert parent.status == "waiting" and KitaruClient().executions.get(kid).status == "waiting"
    assert parent.pending_wait is not None and parent.pending_wait.exec_id == kid
    shown = kitaru_cli("executions", "get", parent.exec_id)
    assert f"kitaru executions input {kid} --wait answer" in shown.stdout

    # The answer resumes the child in a background runner, which is killed after the
    # child's step is recorded (the parent waits for it meanwhile).
    answered = kitaru_cli(
        "executions", "input", kid, "--value", "yes", KITARU_TEST_CRASH_AT="asking-after", **env
    )
    assert answered.returncode == 0, answered.stderr
    deadline = time.monotonic() + 60
    while "child:xyes" not in _effects(effects) or _running_pid(kid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert KitaruClient().executions.get(kid).status == "running"  # its runner died
    assert KitaruClient().executions.get(parent.exec_id).status == "waiting"
    resumed = kitaru_cli("executions", "resume", kid, **env)
    assert resumed.returncode == 0, resumed.stderr
    _until(parent.exec_id, "completed")  # the child, ended, woke its parent
    assert KitaruClient().executions.get(parent.exec_id).result == {
        "pre": "pre",
        "kid": "XYES",
        "post": "post",
    }
    assert _effects(effects) == {"parent:pre": 1, "child:xyes": 1, "parent:post": 1}


def _running_pid(exec_id: str) -> bool:
    """Whether a process still holds the execution's lease."""
    from kitaru_core.runtime import lease
    from kitaru_core.store.metadata_store import get_store

    record = get_store().require_execution(exec_id)
    owner = record.lease_owner
    return owner is not None and lease.owner_is_alive(owner, record.lease_heartbeat)


def test_cancelling_a_parent_cancels_its_children() -> None:
    handle = flows.waiting_parent.run(9)
    assert handle.status == "waiting"
    KitaruClient().executions.cancel(handle.exec_id)
    assert KitaruClient().executions.get(f"{handle.exec_id}.1").status == "cancelled"
    assert KitaruClient().executions.get(handle.exec_id).status == "cancelled"


def test_a_resumed_parent_never_starts_a_second_child() -> None:
    handle = flows.starting_parent.run(4)
    child_id = handle.wait()
    assert child_id == f"{handle.exec_id}.0"
    _until(child_id, "completed")
    from kitaru_core.store.metadata_store import get_store

    get_store().db.execute(
        "UPDATE executions SET status = 'running' WHERE id = :id", {"id": handle.exec_id}
    )
    assert KitaruClient().executions.resume(handle.exec_id).wait() == child_id
    assert [e.exec_id for e in KitaruClient().executions.list(parent=handle.exec_id)] == [child_id]


def test_the_diff_compares_child_flows_by_what_they_returned() -> None:
    first = flows.parent.run(1).exec_id
    same = flows.parent.run(1).exec_id
    other = flows.parent.run(2).exec_id
    assert diff(first, same).by_name()["child"] == "same"
    changed = diff(first, other)
    assert changed.by_name()["child"] == "changed"
    [row] = [c for c in changed.checkpoints if c.name == "child"]
    assert '"A2"' in row.diff and '"A1"' in row.diff
