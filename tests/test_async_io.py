"""Async flows keep their event loop free: ``kitaru.ainput``, ``kitaru.memory.a*`` and
``kitaru.aload`` run their store and artifact calls in a thread, with the journal
positions their sync twins take."""

from __future__ import annotations

import asyncio
import time

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.errors import KitaruError
from kitaru_core.runtime.context import current_execution


@checkpoint
async def answer_my_wait(exec_id: str) -> str:
    """Answers the wait its own execution is polling for, once it has been asked."""
    deadline = time.monotonic() + 10
    while True:
        try:
            KitaruClient().executions.input(exec_id, wait="go", value=True, resume=False)
            return "answered"
        except KitaruError:  # not asked yet
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)


@flow
async def asks_and_answers() -> list[object]:
    ctx = current_execution.get()
    assert ctx is not None
    asked = kitaru.ainput(schema=bool, name="go", timeout=30)
    return list(await asyncio.gather(asked, answer_my_wait(ctx.exec_id)))


def test_ainput_polls_in_a_thread_while_the_flow_goes_on() -> None:
    """With the sync ``wait(timeout=30)`` the loop would be held for 30 s, the answering
    checkpoint could not run, and the execution would stop to wait."""
    started = time.monotonic()
    handle = asks_and_answers.run()
    assert handle.wait() == [True, "answered"]
    assert time.monotonic() - started < 20
    steps = KitaruClient().executions.get(handle.exec_id).checkpoints
    assert [(s.position, s.name) for s in steps] == [(0, "go"), (1, "answer_my_wait")]


@flow
async def remembers(n: int) -> list[object]:
    await kitaru.memory.aset("seen", n)
    entry = await kitaru.memory.aget_entry("seen")
    approved = await kitaru.ainput(schema=bool, name="ok")
    keys = [e.key for e in await kitaru.memory.alist()]
    return [await kitaru.memory.aget("seen"), entry and entry.version, approved, keys]


def test_async_memory_is_journaled_like_the_sync_calls() -> None:
    handle = remembers.run(7)
    client = KitaruClient()
    assert client.executions.get(handle.exec_id).status == "waiting"
    client.executions.input(handle.exec_id, wait="ok", value=True)
    assert handle.wait() == [7, 1, True, ["seen"]]
    # The resumed run took the write from the journal: one version, not two.
    assert len(client.memories.history("seen", scope="remembers", scope_type="flow")) == 1


@checkpoint
async def read_back(exec_id: str) -> str:
    return str(await kitaru.aload(exec_id, "writes"))


@flow
async def reads(exec_id: str) -> str:
    return await read_back(exec_id)


@checkpoint
def writes() -> str:
    return "written earlier"


@flow
def writer() -> str:
    return writes()


def test_aload_reads_another_executions_artifact() -> None:
    earlier = writer.run()
    assert earlier.wait() == "written earlier"
    assert reads.run(earlier.exec_id).wait() == "written earlier"
