"""SIGKILL at random moments, over and over: the journal stays whole and nothing recorded
ever runs twice.

A 20-checkpoint flow whose every fifth checkpoint writes a multi-megabyte output (so
kills land mid-serialization and mid-write too) is started in a subprocess and killed
after a random delay; then resumed in a new process and killed again, until it completes.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env
from kitaru import KitaruClient
from kitaru_core.settings import load_settings
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import get_store
from kitaru_core.testing.fixtures import reset_caches
from kitaru_server import start_server

CHECKPOINTS = 20
PAYLOAD = 6_000_000
MIN_KILLS = 50


def expected_result() -> list[int]:
    return [i * i + (PAYLOAD % 7 if i % 5 == 4 else 0) for i in range(CHECKPOINTS)]


def check_journal(exec_id: str, *, in_order: bool = True) -> set[int]:
    """The journal is consistent: every completed entry's output loads and verifies;
    ``in_order``: the completed entries form a prefix (steps that ran one at a time)."""
    settings = load_settings()
    if settings.database_url is None and settings.server_url is None:
        with sqlite3.connect(settings.sqlite_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = get_store()
    artifacts = get_stack("local").artifacts
    journal = store.load_journal(exec_id)
    completed = {p for p, e in journal.items() if e.status == "completed"}
    if in_order:
        assert completed == set(range(len(completed))), "completed entries form a prefix"
    for position in completed:
        entry = journal[position]
        assert entry.name == "numbered"
        record = store.get_artifact(entry.output_artifact_id or "")
        assert record is not None
        value = artifacts.read(record)
        assert value["i"] == position
    return completed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flow_name", "min_kills", "through_server"),
    [
        ("steps", MIN_KILLS, False),
        ("gathered_steps", MIN_KILLS // 2, False),
        ("steps", MIN_KILLS // 2, True),
    ],
    ids=["sync", "async-gather", "sync-through-server"],
)
def test_random_sigkills_never_corrupt_the_journal_or_rerun_recorded_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flow_name: str,
    min_kills: int,
    through_server: bool,
) -> None:
    if not through_server:
        _kill_until_done(tmp_path, flow_name, min_kills)
        return
    # Every process logged in to a real server (the HTTP metadata store), none with
    # the database; the server keeps the journal, and the artifacts on its own disk.
    (tmp_path / "server").mkdir()
    served = start_server(tmp_path / "server")
    try:
        monkeypatch.delenv("KITARU_DATABASE_URL", raising=False)
        monkeypatch.setenv("KITARU_SERVER_URL", served.url)
        monkeypatch.setenv("KITARU_TOKEN", served.tokens["run"])
        reset_caches()
        _kill_until_done(tmp_path, flow_name, min_kills)
    finally:
        reset_caches()
        served.stop()


def _kill_until_done(tmp_path: Path, flow_name: str, min_kills: int) -> None:
    seed = int(os.environ.get("KITARU_FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"fault-injection seed {seed} (set KITARU_FAULT_SEED to repeat)")
    kills = executions = 0
    seen: set[str] = set()
    in_order = flow_name == "steps"
    while kills < min_kills:
        executions += 1
        effects = tmp_path / f"effects-{executions}.txt"
        env = subprocess_env(
            KITARU_TEST_EFFECTS=str(effects),
            KITARU_TEST_STEP_SLEEP="0.02",
            KITARU_TEST_PAYLOAD=str(PAYLOAD),
        )
        command = [sys.executable, "-c", f"import flows; flows.{flow_name}.run({CHECKPOINTS})"]
        exec_id = None
        snapshots: list[tuple[set[int], collections.Counter[str]]] = []
        stuck = 0  # attempts in a row that recorded nothing new
        for _attempt in range(200):
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            killed = False
            # On a loaded machine a process may need longer than the longest kill delay
            # to record a step: each attempt in a row without progress waits longer, so
            # the execution always completes (and the kills still land).
            try:
                proc.wait(timeout=rng.uniform(0.05, 0.6) * (1 + stuck / 5))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed = True
            else:
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            if exec_id is None:
                latest = KitaruClient().executions.latest()
                if latest is None or latest.exec_id in seen:
                    continue  # killed before the execution was created
                exec_id = latest.exec_id
                seen.add(exec_id)
            command = [sys.executable, "-m", "kitaru", "executions", "resume", exec_id]
            counts = collections.Counter(effects.read_text().split() if effects.exists() else [])
            recorded = check_journal(exec_id, in_order=in_order)
            stuck = stuck + 1 if snapshots and recorded == snapshots[-1][0] else 0
            snapshots.append((recorded, counts))
            if KitaruClient().executions.get(exec_id).status == "completed":
                break  # (a kill that came after the end does not count)
            kills += killed
        assert exec_id is not None
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "completed"
        assert execution.result == expected_result()
        final = collections.Counter(effects.read_text().split())
        for recorded, counts in snapshots:
            for position in recorded:
                step = f"step{position}"
                assert final[step] == counts[step], (
                    f"checkpoint {position} ran again after its completion was recorded"
                )
        assert all(final[f"step{i}"] >= 1 for i in range(CHECKPOINTS))
    leftovers = list((load_settings().home / "artifacts").rglob("*.tmp"))
    print(
        f"{kills} kills over {executions} executions; {len(leftovers)} half-written "
        "blobs left unreferenced by kills mid-write"
    )
    assert kills >= min_kills


@pytest.mark.slow
def test_a_kill_in_the_middle_of_an_artifact_write_leaves_no_entry_behind(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    env = subprocess_env(KITARU_TEST_EFFECTS=str(effects), KITARU_TEST_PAYLOAD="200000000")
    artifacts_dir = load_settings().home / "artifacts"
    proc = subprocess.Popen([sys.executable, "-c", "import flows; flows.steps.run(5)"], env=env)
    deadline = time.monotonic() + 60
    half_written: list[Path] = []
    while "step4" not in (effects.read_text() if effects.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline
    while not half_written and proc.poll() is None and time.monotonic() < deadline:
        half_written = list(artifacts_dir.rglob("*.tmp")) if artifacts_dir.exists() else []
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert half_written, "the kill should have landed while the big output was being written"
    exec_id = KitaruClient().executions.list()[0].exec_id
    assert check_journal(exec_id) == {0, 1, 2, 3}  # the fifth is not recorded
    resumed = subprocess.run(
        [sys.executable, "-m", "kitaru", "executions", "resume", exec_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert KitaruClient().executions.get(exec_id).result == [0, 1, 4, 9, 16 + 200000000 % 7]
    assert effects.read_text().split() == ["step0", "step1", "step2", "step3", "step4", "step4"]
