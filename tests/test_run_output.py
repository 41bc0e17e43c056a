"""What a runner prints reaches the execution's log through the store, whatever
printed it (Python, a C-level write, a child process), so it outlives the machine the
run was on (a pod's log goes with its Job)."""

from __future__ import annotations

import subprocess
import sys

import flows
from conftest import subprocess_env
from kitaru import KitaruClient


def test_a_runner_ships_what_it_prints_to_the_execution_log() -> None:
    handle = flows.chatty.run()
    assert handle.status == "waiting"
    client = KitaruClient()
    client.executions.input(handle.exec_id, value="durable", resume=False)
    ran = subprocess.run(
        [sys.executable, "-m", "kitaru_core.runtime.runner", handle.exec_id],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert ran.returncode == 0, ran.stderr
    # Where it ran still sees it (a pod's own log):
    assert "the word is durable" in ran.stdout and "echoed by a child" in ran.stdout
    log = client.executions.logs(handle.exec_id)
    printed = log[log.index("--- run 2 printed ---") :]
    for line in (
        "the word is durable",
        "a warning on stderr",
        "written to fd 1",
        "echoed by a child",
        f"runner: execution {handle.exec_id} is completed",
    ):
        assert line in printed
    assert client.executions.get(handle.exec_id).result == "durable"
    tail = client.executions.logs(handle.exec_id, tail=1)
    assert tail.rstrip().endswith(f"runner: execution {handle.exec_id} is completed")
