"""The worker and what it drives: start(), idempotent ids, durable timers, wait
deadlines, queues and keys, recovery after SIGKILL, schedules, retention.

Time is moved by a ManualClock, never by sleeping for the length of a timer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import worker_flows as wf
from conftest import PG_URL, kitaru_cli, subprocess_env
from kitaru import KitaruClient
from kitaru.testing import ManualClock, use_clock
from kitaru_core.errors import KitaruStateError, KitaruUsageError
from kitaru_core.runtime import lease
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import get_store
from kitaru_core.worker.schedules import slot_exec_id, slots_after
from kitaru_core.worker.service import Worker


@pytest.fixture(autouse=True)
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects.txt"
    monkeypatch.setenv("KITARU_TEST_EFFECTS", str(path))
    return path


def quiet(_line: str) -> None:
    pass


def wait_until(predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(exec_id: str) -> str:
    return get_store().require_execution(exec_id).status


@pytest.fixture
def worker_process() -> Iterator[list[subprocess.Popen[str]]]:
    """Start ``kitaru worker`` processes; each is stopped with SIGTERM at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_worker(
    started: list[subprocess.Popen[str]], *args: str, **env: str
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "worker", "--poll", "0.2", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(**env),
    )
    started.append(proc)
    return proc


# -- start() and idempotent ids ----------------------------------------------------------


def test_start_returns_at_once_and_the_execution_runs_elsewhere() -> None:
    began = time.monotonic()
    handle = wf.three.start(1)
    assert time.monotonic() - began < 2
    assert handle.wait(timeout=60) == 0 + 1 + 4 + 1
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [c.name for c in execution.checkpoints] == ["work"] * 3


def test_an_exec_id_starts_one_execution_and_other_inputs_are_refused() -> None:
    first = wf.three.run(2, exec_id="order-42")
    assert first.exec_id == "order-42" and first.wait() == 7
    again = wf.three.run(2, exec_id="order-42")
    assert again.exec_id == "order-42"
    assert len([n for n in wf.notes() if n[2] == "start"]) == 3  # not run again
    with pytest.raises(KitaruStateError, match="other inputs"):
        wf.three.run(3, exec_id="order-42")
    with pytest.raises(KitaruStateError, match="flow 'three'"):
        wf.report.run(exec_id="order-42")
    with pytest.raises(KitaruUsageError, match="128 characters"):
        wf.three.start(1, exec_id="no spaces allowed")


def test_twenty_processes_racing_on_one_id_create_one_execution() -> None:
    code = (
        "import worker_flows as wf, sys; h = wf.three.start(5, exec_id='order-42'); "
        "print(h.exec_id)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for _ in range(20)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    assert {o[0].strip() for o in outputs} == {"order-42"}
    assert [e.exec_id for e in KitaruClient().executions.list()] == ["order-42"]
    wait_until(lambda: status_of("order-42") == "completed", what="the one execution")
    starts = [n for n in wf.notes() if n[2] == "start"]
    assert len(starts) == 3  # each checkpoint body ran once


# -- durable timers --------------------------------------------------------------------


def test_a_long_sleep_lets_go_and_the_worker_resumes_it_when_due_never_before() -> None:
    clock = ManualClock()
    with use_clock(clock):
        handle = wf.napper.run(1.0)
        record = get_store().require_execution(handle.exec_id)
        assert record.status == "sleeping"
        assert record.wake_at == pytest.approx(clock.now() + 3600, abs=1)
        worker = Worker(clock=clock, log=quiet)
        clock.advance(3000)
        # A person resuming it early changes nothing: the deadline was fixed.
        KitaruClient().executions.resume(handle.exec_id)
        assert status_of(handle.exec_id) == "sleeping"
        assert get_store().require_execution(handle.exec_id).wake_at == record.wake_at
        clock.advance(599.9)
        worker.run_pass()
        assert status_of(handle.exec_id) == "sleeping"  # not a moment early
        clock.advance(0.2)
        worker.run_once()
    assert handle.wait(timeout=30) == "rested"
    assert worker.counts["timers"] == 1
    assert [n[1] for n in wf.notes() if n[2] == "start"] == ["work0", "work1"]


def test_a_short_sleep_is_slept_in_place() -> None:
    clock = ManualClock()
    with use_clock(clock):
        began = clock.now()
        assert wf.short_nap.run().wait() == "rested"
        assert clock.now() - began == pytest.approx(2, abs=0.5)


def test_sleep_until_needs_an_aware_datetime() -> None:
    import kitaru

    @kitaru.flow
    def naive() -> None:
        kitaru.sleep_until(dt.datetime(2030, 1, 1))

    execution = KitaruClient().executions.get(naive.run().exec_id)
    assert execution.status == "failed"
    assert "timezone-aware" in execution.error["message"]


# -- wait deadlines --------------------------------------------------------------------


def test_an_expired_wait_resolves_to_its_default() -> None:
    clock = ManualClock()
    with use_clock(clock):
        handle = wf.approval.run(True)
        record = get_store().require_execution(handle.exec_id)
        assert record.status == "waiting" and record.wake_at is not None
        clock.advance(601)
        Worker(clock=clock, log=quiet).run_once()
    assert handle.wait(timeout=30) == "answer False"


def test_an_expired_wait_without_default_raises_in_the_flow() -> None:
    clock = ManualClock()
    with use_clock(clock):
        handle = wf.approval.run(False)
        clock.advance(601)
        worker = Worker(clock=clock, log=quiet)
        worker.run_once()
    assert handle.wait(timeout=30) == "expired approve"
    assert worker.counts["expired_waits"] == 1


def test_input_before_the_deadline_wins() -> None:
    clock = ManualClock()
    with use_clock(clock):
        handle = wf.approval.run(True)
        KitaruClient().executions.input(handle.exec_id, value=True)
        assert handle.wait(timeout=60) == "answer True"
        clock.advance(601)
        worker = Worker(clock=clock, log=quiet)
        worker.run_once()
    assert worker.counts["expired_waits"] == 0


# -- queues and keys -------------------------------------------------------------------


def test_a_concurrency_limit_holds_across_three_workers(
    worker_process: list[subprocess.Popen[str]],
) -> None:
    count = 200 if PG_URL else 40  # SQLite has one writer: fewer, same rule
    handles = [wf.limited.start(i) for i in range(count)]
    for _ in range(3):
        start_worker(worker_process, KITARU_TEST_STEP_SLEEP="0.01")
    peak = 0
    store = get_store()

    def sample() -> bool:
        nonlocal peak
        rows = store.db.fetchall(
            "SELECT status, COUNT(*) FROM executions WHERE queue = 'limited' GROUP BY status"
        )
        by_status = dict(rows)
        peak = max(peak, by_status.get("running", 0))
        return by_status.get("completed", 0) == count

    wait_until(sample, timeout=240, what="every limited execution to complete")
    assert 1 <= peak <= 4
    assert sorted(h.wait() for h in handles) == sorted(i + 5 for i in range(count))


def test_executions_with_one_key_run_one_at_a_time_in_start_order(
    worker_process: list[subprocess.Popen[str]],
) -> None:
    handles = [wf.per_customer.start("acme", i) for i in range(50)]
    other = wf.per_customer.start("globex", 99)
    start_worker(worker_process, KITARU_TEST_STEP_SLEEP="0.005")
    for h in [*handles, other]:
        h.wait(timeout=240)
    notes = [n for n in wf.notes() if n[1] != "work99"]
    spans: dict[str, list[float]] = {}
    for exec_id, _name, _event, at in notes:
        spans.setdefault(exec_id, []).append(float(at))
    ordered = [spans[h.exec_id] for h in handles]
    for earlier, later in itertools.pairwise(ordered):
        assert max(earlier) <= min(later)  # strictly one at a time, in start order
    # The key's own memory saw every order of that key, in order, and no other key's.
    orders = KitaruClient().memories.get("orders", scope="per_customer:acme", scope_type="key")
    assert orders == list(range(50))


# -- recovery --------------------------------------------------------------------------


def test_a_killed_run_is_finished_by_the_worker_without_rerunning_recorded_work(
    worker_process: list[subprocess.Popen[str]],
) -> None:
    start_worker(worker_process)
    proc = subprocess.run(
        [sys.executable, "-c", "import worker_flows as wf; wf.three.run(10)"],
        env=subprocess_env(KITARU_TEST_CRASH_AT="work1"),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    [execution] = KitaruClient().executions.list()
    wait_until(lambda: status_of(execution.exec_id) == "completed", what="recovery")
    assert KitaruClient().executions.get(execution.exec_id).result == 15
    starts = [n[1] for n in wf.notes() if n[2] == "start"]
    assert starts == ["work0", "work1", "work1", "work2"]  # work1 died before its record
    assert "recovered by the worker" in KitaruClient().executions.logs(execution.exec_id)


def start_runner(exec_id: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """A process running ``three`` that blocks in its first step until killed (started
    through ``prefix``, a command such as ``unshare``, when given)."""
    code = f"import worker_flows as wf; wf.three.run(1, exec_id={exec_id!r})"
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-c", code],
        env=subprocess_env(KITARU_TEST_STEP_SLEEP="120"),
        text=True,
    )
    wait_until(
        lambda: any(n[:3] == [exec_id, "work0", "start"] for n in wf.notes()),
        what="the runner to start its first step",
    )
    return proc


def seconds_to_recover_after_killing(runner: subprocess.Popen[str], exec_id: str) -> float:
    runner.kill()
    runner.wait(timeout=30)
    killed = time.monotonic()
    wait_until(lambda: status_of(exec_id) == "completed", timeout=60, what="the recovery")
    return time.monotonic() - killed


def test_a_worker_continues_a_killed_runner_at_once_not_at_its_next_poll(
    worker_process: list[subprocess.Popen[str]],
) -> None:
    # The worker polls every 30 s, but it watches the runners on its host: one that
    # dies wakes it (a pidfd on Linux), so the execution goes on within a second.
    runner = start_runner("watched")
    start_worker(worker_process, "--poll", "30")
    wait_until(lambda: get_store().workers.list(), what="the worker's first pass")
    assert seconds_to_recover_after_killing(runner, "watched") < 5
    assert KitaruClient().executions.get("watched").result == 0 + 1 + 4 + 1
    assert [n[1] for n in wf.notes() if n[2] == "end"] == ["work0", "work1", "work2"]


def test_a_worker_watches_a_runner_that_started_after_its_last_pass(
    worker_process: list[subprocess.Popen[str]],
) -> None:
    # The store tells the worker of a new runner between its polls: PostgreSQL notifies
    # it, and on SQLite it sees the database written to (inotify) and looks.
    start_worker(worker_process, "--poll", "30")
    wait_until(lambda: get_store().workers.list(), what="the worker's first pass")
    runner = start_runner("newcomer")
    assert seconds_to_recover_after_killing(runner, "newcomer") < 5
    assert status_of("newcomer") == "completed"


def _unshare_pid() -> tuple[str, ...] | None:
    """A command prefix that runs a process in a new PID namespace (its own pids, this
    hostname), as a container does; None where this machine cannot."""
    for prefix in (
        ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc"),
        ("unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc"),
    ):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            return None
    return None


def test_a_runner_in_another_pid_namespace_is_judged_by_its_heartbeat(
    tmp_path: Path,
) -> None:
    # Containers share a hostname but not their pids: the worker must not look up the
    # runner's pid among its own processes (where it is missing, or someone else), and
    # run the execution a second time while the runner is alive.
    prefix = _unshare_pid()
    if prefix is None:
        pytest.skip("this machine cannot make a PID namespace (unshare)")
    runner = start_runner("boxed", prefix)
    try:
        owner = get_store().require_execution("boxed").lease_owner
        assert owner is not None and lease.pid_of(owner) < 10  # numbered in its namespace
        once = kitaru_cli("worker", "--once")
        assert once.returncode == 0, once.stderr
        assert "recovered" not in once.stderr
        assert status_of("boxed") == "running"
        assert [n[1] for n in wf.notes() if n[2] == "start"] == ["work0"]
    finally:
        runner.kill()
        runner.wait(timeout=30)


def fragile_stack(tmp_path: Path, max_recoveries: int) -> None:
    from kitaru_core.stack_registry import register

    stack = tmp_path / "stack.yaml"
    stack.write_text(f"name: fragile\nsettings:\n  max_recoveries: {max_recoveries}\n")
    register(stack, activate=True)


def worker_passes_until(done: object, **env: str) -> list[int]:
    """``kitaru worker --once`` again and again (each may die running what it recovers)
    until ``done()``; the exit codes, at most 20 passes."""
    codes = []
    for _ in range(20):
        if done():  # type: ignore[operator]
            return codes
        proc = subprocess.run(
            [sys.executable, "-m", "kitaru", "worker", "--once"],
            env=subprocess_env(**env),
            capture_output=True,
            timeout=60,
        )
        codes.append(proc.returncode)
        time.sleep(0.3)  # past the backoff of a second recovery, within a few passes
    raise AssertionError(f"not done after 20 worker passes: {codes}")


def test_a_runner_that_dies_alone_at_the_same_step_fails_naming_its_execution(
    tmp_path: Path,
) -> None:
    # The poison case: every runner of it dies at work0, and it runs alone.
    fragile_stack(tmp_path, max_recoveries=1)
    proc = subprocess.run(
        [sys.executable, "-c", "import worker_flows as wf; wf.three.run(1, exec_id='poison')"],
        env=subprocess_env(KITARU_TEST_CRASH_AT="work0"),
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL  # death 1 at step 0
    codes = worker_passes_until(
        lambda: status_of("poison") == "failed", KITARU_TEST_CRASH_AT="work0"
    )
    assert -signal.SIGKILL in codes  # the recovered run died at step 0 again: death 2
    message = KitaruClient().executions.get("poison").error["message"]
    assert message.startswith("execution poison: the process running it died 2 times in a row")
    assert "at step 0" in message and "allows 1 recoveries" in message
    assert "`kitaru executions logs poison`" in message
    assert "`kitaru executions retry poison`" in message
    assert [n[1] for n in wf.notes() if n[2] == "start"] == ["work0", "work0"]


def test_a_runner_that_dies_once_at_each_step_is_recovered_every_time(tmp_path: Path) -> None:
    # Each death comes after a newly recorded step: progress, so none repeats the last.
    fragile_stack(tmp_path, max_recoveries=1)
    proc = subprocess.run(
        [sys.executable, "-c", "import worker_flows as wf; wf.three.run(2, exec_id='brave')"],
        env=subprocess_env(KITARU_TEST_CRASH_AT="each-step-once"),
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    worker_passes_until(
        lambda: status_of("brave") == "completed", KITARU_TEST_CRASH_AT="each-step-once"
    )
    assert KitaruClient().executions.get("brave").result == 0 + 1 + 4 + 2
    starts = [n[1] for n in wf.notes() if n[2] == "start"]
    assert starts == ["work0", "work0", "work1", "work1", "work2", "work2"]
    assert "death 1 of 2 at step 2" in KitaruClient().executions.logs("brave")


def held_by(pid: int) -> int:
    """Running executions whose lease a process (any run in it) holds."""
    prefix = f"{lease.HOST_ID}:{pid}:"
    owners = get_store().db.fetchall("SELECT lease_owner FROM executions WHERE status = 'running'")
    return sum(1 for (owner,) in owners if (owner or "").startswith(prefix))


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="many writers at once: PostgreSQL")
def test_killing_workers_that_run_several_executions_counts_against_none(
    tmp_path: Path,
    worker_process: list[subprocess.Popen[str]],
) -> None:
    # The rule (kitaru_core/store/deaths.py): a process that dies running several
    # executions is not any one's fault. So with max_recoveries 0, where one counted
    # death fails an execution, every execution still completes, each step once.
    fragile_stack(tmp_path, max_recoveries=0)
    rng = random.Random(42)
    env = {"KITARU_TEST_STEP_SLEEP": "0.1"}
    # A limited flow: beyond the first four, the workers run them, and are killed.
    handles = [wf.limited.start(i, exec_id=f"kill-{i}") for i in range(25)]
    workers = [start_worker(worker_process, **env) for _ in range(2)]
    kills = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
        status_of(h.exec_id) == "completed" for h in handles
    ):
        time.sleep(rng.uniform(0.05, 0.3))
        victim = workers[rng.randrange(2)]
        # Frozen, it can finish nothing while we look: kill it only if it runs several.
        victim.send_signal(signal.SIGSTOP)
        if held_by(victim.pid) < 2:
            victim.send_signal(signal.SIGCONT)
            continue
        victim.kill()
        victim.wait()
        kills += 1
        workers[workers.index(victim)] = start_worker(worker_process, **env)
    assert kills >= 3, f"only {kills} kills: the test did not test the rule"
    for h in handles:
        wait_until(lambda h=h: status_of(h.exec_id) == "completed", timeout=120, what=h.exec_id)
    store = get_store()
    for i, h in enumerate(handles):
        assert h.wait() == 5 + i
        assert store.require_execution(h.exec_id).recoveries == 0
        journal = store.load_journal(h.exec_id)
        recorded_at = {e.name + str(p): e.ended_at for p, e in journal.items()}
        assert len(journal) == 3
        for exec_id, name, event, at in wf.notes():
            if exec_id == h.exec_id and event == "start":
                position = int(name[-1])
                # A body never starts again once its entry is recorded.
                assert float(at) <= recorded_at[f"work{position}"]


# -- schedules -------------------------------------------------------------------------

BERLIN = "Europe/Berlin"


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def test_schedule_slots_follow_daylight_saving_time_in_berlin() -> None:
    # 09:00 Berlin is 08:00 UTC in winter and 07:00 UTC in summer (2026-03-29 switch).
    slots = slots_after("0 9 * * *", BERLIN, utc("2026-03-27T12:00:00"))
    assert [next(slots) for _ in range(3)] == [
        utc("2026-03-28T08:00:00"),
        utc("2026-03-29T07:00:00"),
        utc("2026-03-30T07:00:00"),
    ]
    # 02:30 does not exist on 2026-03-29: it fires once, when the clocks jump.
    gap = slots_after("30 2 * * *", BERLIN, utc("2026-03-28T12:00:00"))
    assert [next(gap) for _ in range(2)] == [utc("2026-03-29T01:00:00"), utc("2026-03-30T00:30:00")]
    # 02:30 happens twice on 2026-10-25: it fires once.
    twice = slots_after("30 2 * * *", BERLIN, utc("2026-10-24T12:00:00"))
    assert [next(twice) for _ in range(2)] == [
        utc("2026-10-25T00:30:00"),
        utc("2026-10-26T01:30:00"),
    ]


@pytest.mark.parametrize(
    ("catchup", "fired"),
    [("all", [8, 9, 10, 11]), ("latest", [11]), ("skip", [11])],
)
def test_catch_up_after_a_worker_was_down_for_three_slots(catchup: str, fired: list[int]) -> None:
    clock = ManualClock(utc("2026-11-30T07:30:00"))
    with use_clock(clock):
        client = KitaruClient()
        client.schedules.create(
            "hourly",
            "worker_flows:report",
            cron="0 * * * *",
            args={"region": "us"},
            catchup=catchup,
        )
        clock.set(utc("2026-11-30T11:00:20"))  # down through 08:00, 09:00 and 10:00
        Worker(clock=clock, log=quiet).run_once()
    ids = sorted(e.exec_id for e in client.executions.list())
    assert ids == [f"hourly@2026-11-30T{h:02d}:00:00Z" for h in fired]
    for exec_id in ids:
        wait_until(lambda e=exec_id: status_of(e) == "completed", what=exec_id)
    assert client.executions.get(ids[0]).result == "report us"
    assert client.schedules.get("hourly").next_at == utc("2026-11-30T12:00:00")


def test_a_late_slot_under_skip_is_skipped() -> None:
    clock = ManualClock(utc("2026-11-30T07:30:00"))
    with use_clock(clock):
        KitaruClient().schedules.create("hourly", "worker_flows:report", cron="0 * * * *")
        clock.set(utc("2026-11-30T08:10:00"))
        Worker(clock=clock, log=quiet).run_once()
    assert KitaruClient().executions.list() == []


def test_two_workers_fire_one_slot_once() -> None:
    clock = ManualClock(utc("2026-11-30T08:59:00"))
    with use_clock(clock):
        KitaruClient().schedules.create("daily", wf.report, cron="0 9 * * *", timezone=BERLIN)
        clock.set(utc("2026-11-30T08:00:01") + 86400)  # 09:00 Berlin next day
        workers = [Worker(clock=clock, log=quiet) for _ in range(2)]
        threads = [threading.Thread(target=w.run_once) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    [execution] = KitaruClient().executions.list()
    assert execution.exec_id == "daily@2026-12-01T08:00:00Z"
    assert sum(w.counts["fired"] for w in workers) == 1
    assert slot_exec_id("daily", utc("2026-12-01T08:00:00")) == execution.exec_id


def test_schedule_commands_create_describe_pause_and_refuse_bad_input() -> None:
    made = kitaru_cli(
        "schedule", "create", "morning", "worker_flows:report", "--cron", "0 9 * * 1-5",
        "--timezone", BERLIN, "--arg", "region=apac",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    described = kitaru_cli("schedule", "describe", "morning", "--output", "json")
    data = json.loads(described.stdout)
    assert len(data["next_firings"]) == 5 and data["args"] == {"region": "apac"}
    for ts in data["next_firings"]:
        local = dt.datetime.fromtimestamp(ts, dt.UTC).astimezone(
            __import__("zoneinfo").ZoneInfo(BERLIN)
        )
        assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert kitaru_cli("schedule", "pause", "morning").returncode == 0
    listed = json.loads(kitaru_cli("schedule", "list", "--output", "json").stdout)
    assert listed[0]["paused"] == 1
    bad = kitaru_cli("schedule", "create", "x", "worker_flows:report", "--cron", "99 * * *")
    assert bad.returncode != 0 and "not a cron expression" in bad.stderr
    zone = kitaru_cli("schedule", "create", "y", "worker_flows:report", "--cron", "0 9 * * *", "--timezone", "Mars/Olympus")  # fmt: skip
    assert zone.returncode != 0 and "not a timezone" in zone.stderr
    assert kitaru_cli("schedule", "delete", "morning").returncode == 0


# -- the command -----------------------------------------------------------------------


def test_run_detached_with_an_exec_id_starts_once() -> None:
    first = kitaru_cli("run", "worker_flows:three", "--arg", "x=1", "--exec-id", "job-1", "-d")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("job-1 ")
    wait_until(lambda: status_of("job-1") == "completed", what="the detached run")
    again = kitaru_cli(
        "run", "worker_flows:three", "--arg", "x=1", "--exec-id", "job-1", "-o", "json"
    )
    assert json.loads(again.stdout)["result"] == 6
    assert len([n for n in wf.notes() if n[2] == "start"]) == 3
    other = kitaru_cli("run", "worker_flows:three", "--arg", "x=2", "--exec-id", "job-1")
    assert other.returncode == 1 and "already taken" in other.stderr


def test_worker_once_and_status_report_what_was_done() -> None:
    handle = wf.three.start(1)
    handle.wait(timeout=60)
    once = kitaru_cli("worker", "--once")
    assert once.returncode == 0, once.stderr
    assert "nothing was due" in once.stderr
    status = json.loads(kitaru_cli("worker", "status", "--output", "json").stdout)["workers"]
    assert status[0]["state"] == "stopped" and status[0]["counts"]["passes"] == 1


def test_an_answer_recorded_without_a_resume_is_continued_by_the_worker() -> None:
    handle = wf.approval.run(True)
    answered = kitaru_cli("executions", "input", handle.exec_id, "--value", "true", "--no-resume")
    assert answered.returncode == 0, answered.stderr
    assert status_of(handle.exec_id) == "waiting"  # recorded, not resumed
    once = kitaru_cli("worker", "--once")
    assert once.returncode == 0, once.stderr
    assert "its wait was answered" in " ".join(once.stderr.split())
    assert handle.wait(timeout=60) == "answer True"
    status = json.loads(kitaru_cli("worker", "status", "--output", "json").stdout)["workers"]
    assert status[0]["counts"]["answered_waits"] == 1


ANSWER_THEN_DIE = """
import os, signal, sys
import kitaru_core.client as client

def die(*_args, **_kwargs):  # the answer has committed; the resume never happens
    os.kill(os.getpid(), signal.SIGKILL)

client.continue_stopped = die
client.KitaruClient().executions.input(sys.argv[1], value=True)
"""


def test_an_answer_whose_process_died_before_resuming_is_continued_by_the_worker() -> None:
    handle = wf.approval.run(True)
    died = subprocess.run(
        [sys.executable, "-c", ANSWER_THEN_DIE, handle.exec_id],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert status_of(handle.exec_id) == "waiting"
    assert KitaruClient().executions.pending_waits(handle.exec_id) == []
    once = kitaru_cli("worker", "--once")
    assert once.returncode == 0, once.stderr
    assert handle.wait(timeout=60) == "answer True"


def test_sigterm_lets_running_executions_finish_and_exits_0(
    worker_process: list[subprocess.Popen[str]],
) -> None:
    from kitaru_core.runtime.engine import create_execution

    # Queued and not admitted by its starter: only the worker can run it.
    slow = create_execution(wf.limited, (1,), {}, stack=get_stack()).record
    assert slow.status == "queued"
    proc = start_worker(worker_process, KITARU_TEST_STEP_SLEEP="0.5")
    wait_until(lambda: status_of(slow.id) == "running", what="the worker to take it")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert status_of(slow.id) == "completed"
    assert proc.stderr is not None and "letting 1 running execution(s) finish" in proc.stderr.read()


# -- retention -------------------------------------------------------------------------


def test_delete_keeps_what_a_replay_and_memory_still_refer_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KITARU_INLINE_ARTIFACT_BYTES", "0")  # every value is a blob
    from kitaru_core.testing.fixtures import reset_caches

    reset_caches()
    source = wf.three.run(1)
    replay = wf.three.replay(source.exec_id, from_=2)
    shared = wf.three.run(1)  # the same outputs: the same content-addressed blobs
    assert replay.wait() == 6 and shared.wait() == 6
    age_blob_writes()  # written long enough ago that no row of theirs is still coming
    client = KitaruClient()
    deleted = client.executions.delete(source.exec_id)
    assert deleted.executions == [source.exec_id]
    assert deleted.blobs == []  # every blob is still someone's
    with pytest.raises(KitaruUsageError):
        client.executions.get(source.exec_id)
    assert client.executions.get(replay.exec_id).result == 6
    client.executions.delete(shared.exec_id, replay.exec_id)
    assert list(get_stack().artifact_store.list()) == []  # now nothing refers to any
    running = wf.approval.run(True)
    with pytest.raises(KitaruStateError, match="cancel them first"):
        client.executions.delete(running.exec_id)


def age_blob_writes() -> None:
    from kitaru_core.store.retention import BLOB_WRITE_SECONDS

    get_store().db.execute(
        "UPDATE blob_writes SET written_at = written_at - :age", {"age": BLOB_WRITE_SECONDS + 1}
    )


def test_a_blob_a_writer_took_while_retention_deleted_it_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer finds the blob there (so does not put it), retention deletes the only
    row that referred to it and then the blob, the writer commits its row: the row must
    not point at nothing."""
    monkeypatch.setenv("KITARU_INLINE_ARTIFACT_BYTES", "0")
    from kitaru_core.store.records import ArtifactRecord
    from kitaru_core.testing.fixtures import reset_caches

    reset_caches()
    first = wf.three.run(1)
    assert first.wait() == 6
    age_blob_writes()
    artifacts = get_stack().artifacts
    pending = artifacts.write(6, exec_id=None, name="later", role="saved")  # not committed
    deleted = KitaruClient().executions.delete(first.exec_id)
    assert pending.key not in deleted.blobs
    get_store().db.execute(ArtifactRecord.INSERT, pending.params())  # the writer commits
    assert artifacts.read(pending) == 6
    age_blob_writes()  # once the write is old and nothing refers to the blob, it goes
    get_store().db.execute("DELETE FROM artifacts WHERE id = :id", {"id": pending.id})
    gc = json.loads(kitaru_cli("artifacts", "gc", "--settle", "0", "--output", "json").stdout)
    assert pending.key in gc["blobs"]


def test_a_stack_with_retention_days_has_the_worker_prune(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text("name: tidy\nsettings:\n  retention_days: 7\n")
    from kitaru_core.stack_registry import register

    register(tmp_path / "stack.yaml", activate=True)
    old, new = wf.three.run(1), wf.three.run(2)
    get_store().db.execute(
        "UPDATE executions SET created_at = created_at - 8 * 86400 WHERE id = :id",
        {"id": old.exec_id},
    )
    worker = Worker(log=quiet)
    worker.run_once()
    assert worker.counts["pruned"] == 1
    assert [e.exec_id for e in KitaruClient().executions.list()] == [new.exec_id]


def test_prune_and_gc_find_only_what_is_old_or_unreferenced() -> None:
    old = wf.three.run(1)
    get_store().db.execute(
        "UPDATE executions SET created_at = created_at - 40 * 86400 WHERE id = :id",
        {"id": old.exec_id},
    )
    new = wf.three.run(2)
    dry = kitaru_cli("executions", "prune", "--older-than", "30d", "--dry-run", "--output", "json")
    assert [r["exec_id"] for r in json.loads(dry.stdout)] == [old.exec_id]
    assert status_of(old.exec_id) == "completed"  # a dry run deletes nothing
    pruned = kitaru_cli("executions", "prune", "--older-than", "30d", "--output", "json")
    assert json.loads(pruned.stdout)["executions"] == [old.exec_id]
    assert status_of(new.exec_id) == "completed"
    get_stack().artifact_store.put("0" * 64, b"nobody refers to this")
    gc = json.loads(kitaru_cli("artifacts", "gc", "--dry-run", "--output", "json").stdout)
    assert gc["blobs"] == ["0" * 64]
    done = json.loads(kitaru_cli("artifacts", "gc", "--settle", "0", "--output", "json").stdout)
    assert done["blobs"] == ["0" * 64] and not get_stack().artifact_store.exists("0" * 64)
    bad = kitaru_cli("executions", "prune", "--older-than", "soon")
    assert bad.returncode != 0 and "not an age" in bad.stderr


def seed_old_executions(count: int, stack: str, days: float = 40) -> None:
    """``count`` completed executions from ``days`` ago, written as a store holds them."""
    created = time.time() - days * 86400
    get_store().db.executemany(
        "INSERT INTO executions (id, flow_name, flow_ref, status, stack, created_at, "
        "started_at, ended_at) VALUES (:id, 'old', 'old:old', 'completed', :stack, :t, :t, :t)",
        [{"id": f"old{i:05d}", "stack": stack, "t": created + i} for i in range(count)],
    )


def test_prune_deletes_any_number_a_page_at_a_time_and_the_worker_a_page_a_pass(
    tmp_path: Path,
) -> None:
    (tmp_path / "stack.yaml").write_text("name: tidy\nsettings:\n  retention_days: 7\n")
    from kitaru_core.stack_registry import register
    from kitaru_core.worker.retention import PAGE

    register(tmp_path / "stack.yaml", activate=True)
    seed_old_executions(2 * PAGE + 50, "tidy")
    dry = kitaru_cli("executions", "prune", "--older-than", "30d", "--dry-run")
    assert dry.returncode == 0 and "the newest 100; --limit shows more" in dry.stdout

    worker = Worker(log=quiet)
    worker.run_once()  # one page, so the pass still gets to due work
    assert worker.counts["pruned"] == PAGE
    worker.run_once()
    assert worker.counts["pruned"] == 2 * PAGE
    kept = wf.three.run(1)
    pruned = kitaru_cli("executions", "prune", "--older-than", "30d", "--output", "json")
    assert len(json.loads(pruned.stdout)["executions"]) == 50
    assert [e.exec_id for e in KitaruClient().executions.list(limit=None)] == [kept.exec_id]


def test_gc_checks_the_store_a_page_of_keys_at_a_time() -> None:
    from kitaru_core.worker.retention import PAGE

    kept = wf.three.run(1)  # small outputs live inline: no blobs of its own
    store = get_stack().artifact_store
    orphans = [f"{i:064x}" for i in range(2 * PAGE + 7)]
    for key in orphans:
        store.put(key, b"nobody refers to this")
    referenced = KitaruClient().executions.get(kept.exec_id).checkpoints[0].artifact_id
    get_store().db.execute(  # one orphan becomes a blob that a row refers to
        "UPDATE artifacts SET key = :k, inline = NULL WHERE id = :id",
        {"k": orphans[PAGE + 1], "id": referenced},
    )
    dry = json.loads(kitaru_cli("artifacts", "gc", "--dry-run", "--output", "json").stdout)
    assert sorted(dry["blobs"]) == sorted(set(orphans) - {orphans[PAGE + 1]})
    done = json.loads(kitaru_cli("artifacts", "gc", "--settle", "0", "--output", "json").stdout)
    assert len(done["blobs"]) == 2 * PAGE + 6
    assert sorted(store.list()) == [orphans[PAGE + 1]]


def test_new_statuses_filter_listings() -> None:
    clock = ManualClock()
    with use_clock(clock):
        handle = wf.napper.run(2.0)
    listed = kitaru_cli("executions", "list", "--status", "sleeping", "--output", "json")
    assert [e["exec_id"] for e in json.loads(listed.stdout)] == [handle.exec_id]
    assert json.loads(listed.stdout)[0]["wake_at"] is not None


def test_delete_keeps_a_value_a_memory_version_refers_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITARU_INLINE_ARTIFACT_BYTES", "0")  # the memory value is a blob
    from kitaru_core.testing.fixtures import reset_caches

    reset_caches()
    handle = wf.per_customer.run("acme", 7)
    assert handle.wait() == 7
    client = KitaruClient()
    client.executions.delete(handle.exec_id)
    orders = client.memories.get("orders", scope="per_customer:acme", scope_type="key")
    assert orders == [7]  # the execution that wrote it is gone; the value is not
