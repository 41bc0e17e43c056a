"""What a runner prints reaches the execution's log through the store, whatever
printed it (Python, a C-level write, a child process), so it outlives the machine the
run was on (a pod's log goes with its Job)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

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


def test_a_flow_run_in_this_process_keeps_what_it_prints_and_logs_apart_per_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two flows in two threads of one process (a script, a server's worker): each
    execution's log holds its own prints and log records, and the terminal still
    shows them all."""
    import threading

    runs: dict[str, str] = {}

    def run(word: str) -> None:
        runs[word] = flows.talkative.run(word).exec_id

    threads = [threading.Thread(target=run, args=(w,)) for w in ("alpha", "beta")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client = KitaruClient()
    for word, other in (("alpha", "beta"), ("beta", "alpha")):
        log = client.executions.logs(runs[word])
        assert f"saying {word} 0" in log and f"saying {word} 2" in log
        assert re.search(rf"[+-]\d{{4}} WARNING talkative: {word} was said 3 times", log)
        assert other not in log
    shown = capsys.readouterr()
    assert "saying alpha 1" in shown.out and "saying beta 1" in shown.out


def test_keeping_a_runs_log_records_does_not_silence_unconfigured_logging() -> None:
    """A program that configured no logging still sees warnings on stderr, as Python
    prints them by itself, while the run keeps them too."""
    ran = subprocess.run(
        [sys.executable, "-c", "import flows; print(flows.talkative.run('gamma').exec_id)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert ran.returncode == 0, ran.stderr
    assert "gamma was said 3 times" in ran.stderr
    log = KitaruClient().executions.logs(ran.stdout.split()[-1])
    assert "WARNING talkative: gamma was said 3 times" in log
