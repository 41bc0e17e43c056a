"""Flows and checkpoints in one process: recording, answering from the journal, errors.

Every test that runs a flow runs twice (the ``variant`` fixture): with ``def`` flows
and checkpoints, and with their ``async def`` twins, which must behave the same.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.store.metadata_store import get_store

calls: list[str] = []
attempts: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()
    attempts.clear()


@checkpoint
def double(x: int) -> int:
    calls.append(f"double({x})")
    return 2 * x


@flow
def doubler(x: int) -> int:
    return double(x) + double(x + 1)


def _reopen(exec_id: str) -> None:
    """Make a completed execution look crashed again, so it can be resumed."""
    get_store().db.execute(
        "UPDATE executions SET status = 'running' WHERE id = :id", {"id": exec_id}
    )


def test_run_returns_a_handle_with_the_result(v: Any) -> None:
    handle = v.doubler.run(3)
    assert handle.status == "completed"
    assert handle.wait() == 14
    assert handle.get() == 14
    assert calls == ["double(3)", "double(4)"]


def test_each_checkpoint_is_recorded_in_call_order(v: Any) -> None:
    handle = v.doubler.run(3)
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [(c.position, c.name, c.status) for c in execution.checkpoints] == [
        (0, "double", "completed"),
        (1, "double", "completed"),
    ]
    outputs = [a.load() for a in KitaruClient().artifacts.list(handle.exec_id, name="double")]
    assert outputs == [6, 8]


def test_resumed_body_answers_completed_checkpoints_from_the_journal(v: Any) -> None:
    handle = v.doubler.run(3)
    _reopen(handle.exec_id)
    calls.clear()
    assert KitaruClient().executions.resume(handle.exec_id).wait() == 14
    assert calls == []


def test_calling_a_flow_directly_says_to_use_run() -> None:
    with pytest.raises(kitaru.KitaruUsageError, match=r"doubler.run\(") as info:
        doubler(1)
    assert "called directly" in str(info.value)


def test_checkpoint_outside_a_flow_is_a_context_error() -> None:
    with pytest.raises(kitaru.KitaruContextError, match="outside a flow"):
        double(1)


@checkpoint
def outer_step() -> int:
    return double(1)


@flow
def nests() -> int:
    return outer_step()


def test_checkpoint_inside_a_checkpoint_is_a_context_error(v: Any) -> None:
    handle = v.nests.run()
    assert handle.status == "failed"
    with pytest.raises(kitaru.KitaruExecutionError) as info:
        handle.wait()
    assert "KitaruContextError" in str(info.value)
    assert "cannot nest" in str(info.value)
    assert info.value.exec_id == handle.exec_id
    assert info.value.status == "failed"
    assert f"kitaru executions retry {handle.exec_id}" in str(info.value)


@checkpoint(retries=2, retry_delay=0.05)
def flaky(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise ConnectionError("try again")
    return "ok"


@flow
def uses_flaky(key: str) -> str:
    return flaky(key)


def test_checkpoint_retries_with_delay_until_it_succeeds(v: Any) -> None:
    started = time.monotonic()
    handle = v.uses_flaky.run("a")
    assert handle.wait() == "ok"
    assert attempts["a"] == 3
    assert time.monotonic() - started >= 0.1
    [entry] = KitaruClient().executions.get(handle.exec_id).checkpoints
    assert entry.attempts == 3


@checkpoint
def fails_twice(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise ConnectionError("try again")
    return "ok"


@flow(retries=2)
def default_retries(key: str) -> str:
    return fails_twice(key)


@flow
def no_retries(key: str) -> str:
    return fails_twice(key)


def test_flow_retries_are_the_default_for_its_checkpoints(v: Any) -> None:
    assert v.default_retries.run("b").wait() == "ok"
    handle = v.no_retries.run("c")
    assert handle.status == "failed"
    assert attempts["c"] == 1


def test_a_failed_checkpoint_is_recorded_and_retry_continues_after_the_fix(v: Any) -> None:
    handle = v.no_retries.run("d")
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "failed"
    assert execution.error is not None
    assert execution.error["type"] == "builtins.ConnectionError"
    assert [(c.name, c.status) for c in execution.checkpoints] == [("fails_twice", "failed")]
    attempts["d"] = 5  # the cause is fixed
    assert KitaruClient().executions.retry(handle.exec_id).wait() == "ok"
    assert KitaruClient().executions.get(handle.exec_id).checkpoints[0].status == "completed"


# Bodies of slow_square in flight: each waits until all five are, which only happens
# when they run at the same time (one after another, the first would wait in vain).
in_flight: set[int] = set()
saw_all: list[bool] = []


def _together(x: int) -> bool | None:
    """None while waiting for the others; whether all five met, once it is decided."""
    in_flight.add(x)
    return True if len(in_flight) == 5 else None


@checkpoint
def slow_square(x: int) -> int:
    deadline = time.monotonic() + 10
    while _together(x) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    saw_all.append(len(in_flight) == 5)
    calls.append(f"square({x})")
    return x * x


@flow
def fan_out(n: int) -> list[int]:
    futures = slow_square.map(range(n))
    tail = double.submit(100)
    return [f.result() for f in futures] + [tail.result()]


def test_submit_and_map_run_concurrently_with_positions_in_program_order(v: Any) -> None:
    in_flight.clear()
    saw_all.clear()
    handle = v.fan_out.run(5)
    assert handle.wait() == [0, 1, 4, 9, 16, 200]
    assert saw_all == [True] * 5  # the five ran at the same time, not one after another
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [c.name for c in execution.checkpoints] == ["slow_square"] * 5 + ["double"]
    outputs = [
        KitaruClient().artifacts.get(c.artifact_id or "").load() for c in execution.checkpoints
    ]
    assert outputs == [0, 1, 4, 9, 16, 200]
    _reopen(handle.exec_id)
    calls.clear()
    assert KitaruClient().executions.resume(handle.exec_id).wait() == [0, 1, 4, 9, 16, 200]
    assert calls == []


@checkpoint
def boom() -> None:
    raise ValueError("nobody looked")


@flow
def ignores_its_future() -> str:
    boom.submit()
    return "done"


def test_a_submitted_checkpoint_failure_nobody_observed_fails_the_flow(v: Any) -> None:
    handle = v.ignores_its_future.run()
    assert handle.status == "failed"
    with pytest.raises(kitaru.KitaruExecutionError, match="nobody looked"):
        handle.wait()


@dataclass
class Report:
    title: str
    score: float


@checkpoint
def write_report(title: str) -> Report:
    kitaru.save("draft", {"title": title, "words": 3}, type="data", tags=["draft"])
    kitaru.log(model="none", words=3)
    return Report(title, 0.5)


@checkpoint
def read_back(exec_id: str) -> dict[str, object]:
    return kitaru.load(exec_id, "draft")  # type: ignore[no-any-return]


@flow
def reporting(title: str) -> Report:
    kitaru.log(stage="reporting")
    return write_report(title)


@flow
def reader(exec_id: str) -> dict[str, object]:
    return read_back(exec_id)


def test_save_load_and_log(v: Any) -> None:
    handle = v.reporting.run("Q3")
    assert handle.wait() == Report("Q3", 0.5)
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.metadata == {"stage": "reporting"}
    assert execution.checkpoints[0].metadata == {"model": "none", "words": 3}
    assert execution.checkpoints[0].inputs == {"title": "'Q3'"}  # what it was called with
    [saved] = KitaruClient().artifacts.list(handle.exec_id, name="draft")
    assert (saved.role, saved.artifact_type, saved.tags) == ("saved", "data", ["draft"])
    assert v.reader.run(handle.exec_id).wait() == {"title": "Q3", "words": 3}


def test_save_outside_a_checkpoint_is_a_context_error() -> None:
    with pytest.raises(kitaru.KitaruContextError, match="inside a @checkpoint"):
        kitaru.save("x", 1)
    with pytest.raises(kitaru.KitaruContextError):
        kitaru.log(a=1)


def test_an_argument_that_cannot_be_serialized_is_refused_before_anything_is_written() -> None:
    lock = threading.Lock()
    with pytest.raises(kitaru.KitaruUsageError, match="argument 'x' of flow 'doubler'") as info:
        doubler.run(lock)
    assert "cannot be serialized" in str(info.value)
    assert KitaruClient().executions.list() == []


def test_wrong_arguments_name_the_flow() -> None:
    with pytest.raises(kitaru.KitaruUsageError, match="flow 'doubler' cannot take"):
        doubler.run(1, 2)


def test_unknown_execution_id() -> None:
    with pytest.raises(kitaru.KitaruUsageError, match="no execution with id 'nope'"):
        KitaruClient().executions.resume("nope")


def test_resuming_a_completed_execution_is_a_state_error(v: Any) -> None:
    handle = v.doubler.run(1)
    with pytest.raises(kitaru.KitaruStateError, match="already completed"):
        KitaruClient().executions.resume(handle.exec_id)


def test_get_before_the_end_is_a_state_error(v: Any) -> None:
    handle = v.doubler.run(1)
    _reopen(handle.exec_id)
    with pytest.raises(kitaru.KitaruStateError, match="not finished"):
        handle.get()
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.05)


def test_unknown_stack_is_a_stack_error() -> None:
    with pytest.raises(kitaru.KitaruStackError, match="no stack named 'aws'"):
        doubler.run(1, stack="aws")


def test_execution_ids_can_be_given_by_unique_prefix(v: Any) -> None:
    handle = v.doubler.run(2)
    assert KitaruClient().executions.get(handle.exec_id[:10]).exec_id == handle.exec_id


@checkpoint
def returns_none() -> None:
    calls.append("none")


@flow
def none_flow() -> None:
    returns_none()


def test_none_results_are_recorded(v: Any) -> None:
    handle = v.none_flow.run()
    assert handle.wait() is None
    _reopen(handle.exec_id)
    calls.clear()
    KitaruClient().executions.resume(handle.exec_id)
    assert calls == []


@flow
def long_flow(n: int) -> int:
    futures = [double.submit(i) for i in range(0, n, 50)]
    return sum(double(i) for i in range(n)) + sum(f.result() for f in futures)


def test_a_long_journal_is_replayed_page_by_page(v: Any) -> None:
    handle = v.long_flow.run(700)  # several pages of the journal reader
    expected = handle.wait()
    _reopen(handle.exec_id)
    calls.clear()
    assert KitaruClient().executions.resume(handle.exec_id).wait() == expected
    assert calls == []


# -- the async twins of the flows above, under the same checkpoint names ---------------


@checkpoint(name="double")
async def adouble(x: int) -> int:
    calls.append(f"double({x})")
    await asyncio.sleep(0)
    return 2 * x


@flow
async def adoubler(x: int) -> int:
    return await adouble(x) + await adouble(x + 1)


@checkpoint(name="outer_step")
async def aouter_step() -> int:
    return await adouble(1)


@flow
async def anests() -> int:
    return await aouter_step()


@checkpoint(name="flaky", retries=2, retry_delay=0.05)
async def aflaky(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise ConnectionError("try again")
    return "ok"


@flow
async def auses_flaky(key: str) -> str:
    return await aflaky(key)


@checkpoint(name="fails_twice")
async def afails_twice(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise ConnectionError("try again")
    return "ok"


@flow(retries=2)
async def adefault_retries(key: str) -> str:
    return await afails_twice(key)


@flow
async def ano_retries(key: str) -> str:
    return await afails_twice(key)


@checkpoint(name="slow_square")
async def aslow_square(x: int) -> int:
    deadline = time.monotonic() + 10
    while _together(x) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    saw_all.append(len(in_flight) == 5)
    calls.append(f"square({x})")
    return x * x


@flow
async def afan_out(n: int) -> list[int]:
    squares = asyncio.gather(*(aslow_square(i) for i in range(n)))  # positions taken now
    tail = adouble(100)
    return [*await squares, await tail]


@checkpoint(name="boom")
async def aboom() -> None:
    raise ValueError("nobody looked")


@flow
async def aignores_its_future() -> str:
    aboom.submit()
    return "done"


@checkpoint(name="write_report")
async def awrite_report(title: str) -> Report:
    kitaru.save("draft", {"title": title, "words": 3}, type="data", tags=["draft"])
    kitaru.log(model="none", words=3)
    return Report(title, 0.5)


@flow
async def areporting(title: str) -> Report:
    kitaru.log(stage="reporting")
    return await awrite_report(title)


@checkpoint(name="read_back")
def aread_back(exec_id: str) -> dict[str, object]:
    return kitaru.load(exec_id, "draft")  # type: ignore[no-any-return]


@flow
async def areader(exec_id: str) -> dict[str, object]:
    return await aread_back(exec_id)  # a sync checkpoint in an async flow: in a thread


@checkpoint(name="returns_none")
async def areturns_none() -> None:
    calls.append("none")


@flow
async def anone_flow() -> None:
    await areturns_none()


@flow
async def along_flow(n: int) -> int:
    futures = [adouble.submit(i) for i in range(0, n, 50)]
    total = 0
    for i in range(n):
        total += await adouble(i)
    return total + sum(f.result() for f in futures)


NAMES = [
    "doubler",
    "nests",
    "uses_flaky",
    "default_retries",
    "no_retries",
    "fan_out",
    "ignores_its_future",
    "reporting",
    "reader",
    "none_flow",
    "long_flow",
]


@pytest.fixture(params=["sync", "async"])
def v(request: pytest.FixtureRequest) -> Any:
    """The flows of this module, as ``def`` or as ``async def``."""
    prefix = "" if request.param == "sync" else "a"
    return SimpleNamespace(**{n: globals()[prefix + n] for n in NAMES})


@checkpoint
async def abig(tag: str) -> bytes:
    kitaru.save("notes", tag.encode() * 50_000)  # a blob too: uploaded at completion
    return tag.encode() * 100_000  # beyond the inline limit: a blob in the artifact store


@flow
async def agathers_big_outputs() -> int:
    first, second = await asyncio.gather(abig("a"), abig("b"))
    return len(first) + len(second)


def test_gathered_async_checkpoints_upload_their_outputs_side_by_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow bucket takes 0.5 s a put; the event loop is not held meanwhile, so two
    gathered checkpoints' uploads (each a saved value and an output) overlap instead of
    queueing behind each other."""
    from kitaru_core.builtin.local_artifact_store import LocalArtifactStore

    puts: list[tuple[float, float]] = []
    real_put = LocalArtifactStore.put

    def slow_put(self: LocalArtifactStore, key: str, source: Any) -> None:
        began = time.monotonic()
        time.sleep(0.5)
        real_put(self, key, source)
        puts.append((began, time.monotonic()))

    monkeypatch.setattr(LocalArtifactStore, "put", slow_put)
    handle = agathers_big_outputs.run()
    assert handle.wait() == 200_000
    assert len(puts) == 4
    (_, first_ended), (second_began, _), *_ = sorted(puts)
    assert second_began < first_ended, puts  # the second began before the first ended
    execution = KitaruClient().executions.get(handle.exec_id)
    loaded = [
        KitaruClient().artifacts.get(c.artifact_id or "").load() for c in execution.checkpoints
    ]
    assert sorted(len(v) for v in loaded) == [100_000, 100_000]
    saved = [a for a in KitaruClient().artifacts.list(handle.exec_id) if a.name == "notes"]
    assert sorted(a.load() for a in saved) == [b"a" * 50_000, b"b" * 50_000]
