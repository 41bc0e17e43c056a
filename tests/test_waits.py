"""kitaru.wait(): suspending with no process held, input validated, resumed by input."""

from __future__ import annotations

import threading
import time
from typing import Literal

import pytest
from pydantic import BaseModel

import kitaru
from kitaru import KitaruClient, checkpoint, flow

ran: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


@checkpoint
def prepare(topic: str) -> str:
    ran.append("prepare")
    return f"plan for {topic}"


class Decision(BaseModel):
    approved: bool
    reason: str


@flow
def approvals(topic: str) -> dict[str, object]:
    plan = prepare(topic)
    ok = kitaru.wait(name="approve", question="Approve the plan?", schema=bool)
    tone = kitaru.wait(schema=Literal["formal", "casual"])
    decision = kitaru.wait(schema=Decision, metadata={"team": "legal"})
    count = kitaru.wait(schema=int | str)
    return {"plan": plan, "ok": ok, "tone": tone, "decision": decision, "count": count}


def answer(exec_id: str, **kwargs: object) -> None:
    """Give input and resume in this process (the background worker is tested end to end)."""
    KitaruClient().executions.input(exec_id, resume=False, **kwargs)  # type: ignore[arg-type]
    KitaruClient().executions.resume(exec_id)


def test_a_wait_suspends_the_execution_and_records_what_it_expects() -> None:
    handle = approvals.run("launch")
    assert handle.status == "waiting"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.lease_owner is None  # nobody holds it while it waits
    assert execution.ended_at is None
    wait = execution.pending_wait
    assert wait is not None
    assert (wait.name, wait.question, wait.schema, wait.schema_name) == (
        "approve",
        "Approve the plan?",
        {"type": "boolean"},
        "bool",
    )
    assert [w.name for w in KitaruClient().executions.pending_waits()] == ["approve"]


def test_input_resumes_and_each_wait_returns_its_typed_value() -> None:
    exec_id = approvals.run("launch").exec_id
    answer(exec_id, wait="approve", value=True)
    assert KitaruClient().executions.get(exec_id).pending_wait.name == "wait_1"  # type: ignore[union-attr]
    answer(exec_id, value="casual")  # the only pending wait needs no name
    answer(exec_id, value={"approved": False, "reason": "too early"})
    answer(exec_id, value=3)
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "completed"
    assert execution.result == {
        "plan": "plan for launch",
        "ok": True,
        "tone": "casual",
        "decision": Decision(approved=False, reason="too early"),
        "count": 3,
    }
    assert ran == ["prepare"]  # the checkpoint before the waits ran once
    kinds = [(c.name, c.kind) for c in execution.checkpoints]
    assert kinds == [
        ("prepare", "checkpoint"),
        ("approve", "wait"),
        ("wait_1", "wait"),
        ("wait_2", "wait"),
        ("wait_3", "wait"),
    ]


@pytest.mark.parametrize(
    ("wait", "value", "expected"),
    [
        ("approve", "yes", "must be bool"),
        ("approve", 1, "must be bool"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_and_nothing_is_stored(
    wait: str, value: object, expected: str
) -> None:
    exec_id = approvals.run("launch").exec_id
    with pytest.raises(kitaru.KitaruWaitValidationError, match=expected) as info:
        KitaruClient().executions.input(exec_id, wait=wait, value=value)
    assert "still waiting" in str(info.value)
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "waiting"
    assert execution.pending_wait is not None and execution.pending_wait.status == "pending"
    assert KitaruClient().artifacts.list(exec_id, name=wait) == []


def test_literals_and_models_are_checked_too() -> None:
    exec_id = approvals.run("launch").exec_id
    answer(exec_id, value=True)
    with pytest.raises(kitaru.KitaruWaitValidationError, match=r"Literal\['formal', 'casual'\]"):
        KitaruClient().executions.input(exec_id, value="rude")
    answer(exec_id, value="formal")
    with pytest.raises(kitaru.KitaruWaitValidationError, match="'reason' is a required property"):
        KitaruClient().executions.input(exec_id, value={"approved": True})


def test_input_for_an_unknown_or_answered_wait_is_refused() -> None:
    exec_id = approvals.run("launch").exec_id
    with pytest.raises(kitaru.KitaruUsageError, match="no wait named 'nope'"):
        KitaruClient().executions.input(exec_id, wait="nope", value=True)
    KitaruClient().executions.input(exec_id, wait="approve", value=True, resume=False)
    with pytest.raises(kitaru.KitaruStateError, match="already answered"):
        KitaruClient().executions.input(exec_id, wait="approve", value=False)


def test_abort_cancels_and_later_checkpoints_never_run() -> None:
    exec_id = approvals.run("launch").exec_id
    execution = KitaruClient().executions.abort_wait(exec_id, wait="approve")
    assert execution.status == "cancelled"
    with pytest.raises(kitaru.KitaruStateError):
        KitaruClient().executions.resume(exec_id)
    with pytest.raises(kitaru.KitaruStateError, match="has ended"):
        KitaruClient().executions.input(exec_id, wait="approve", value=True)


@flow
def quick_approval() -> bool:
    return bool(kitaru.wait(name="go", timeout=5))


def test_a_timeout_keeps_polling_so_a_prompt_answer_continues_in_the_same_process() -> None:
    def answer_soon() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            latest = KitaruClient().executions.latest()
            if latest and KitaruClient().executions.pending_waits(latest.exec_id):
                KitaruClient().executions.input(latest.exec_id, wait="go", value=True)
                return
            time.sleep(0.05)

    helper = threading.Thread(target=answer_soon)
    helper.start()
    started = time.monotonic()
    handle = quick_approval.run()
    helper.join()
    assert handle.status == "completed" and handle.get() is True
    assert time.monotonic() - started < 4.5
    assert KitaruClient().executions.get(handle.exec_id).runs == 1


@checkpoint
def waits_inside() -> bool:
    return bool(kitaru.wait())


@flow
def bad_wait() -> bool:
    return waits_inside()


def test_wait_outside_the_flow_body_is_a_context_error() -> None:
    with pytest.raises(kitaru.KitaruContextError, match="outside a flow"):
        kitaru.wait()
    handle = bad_wait.run()
    with pytest.raises(kitaru.KitaruExecutionError, match="inside checkpoint 'waits_inside'"):
        handle.wait()


@flow
def same_name_twice() -> None:
    kitaru.wait(name="x")
    kitaru.wait(name="x")


def test_a_wait_name_used_twice_is_refused() -> None:
    exec_id = same_name_twice.run().exec_id
    answer(exec_id, value=True)
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "failed"
    assert "used twice" in (execution.error or {}).get("message", "")


@flow
def approve_other(target: str) -> str:
    """An agent that approves another execution (agent-to-agent)."""
    review = prepare("review " + target)
    KitaruClient().executions.input(target, wait="approve", value=True, resume=False)
    return review


def test_another_flow_can_give_the_input() -> None:
    target = approvals.run("launch").exec_id
    assert approve_other.run(target).wait() == "plan for review " + target
    KitaruClient().executions.resume(target)
    assert KitaruClient().executions.get(target).pending_wait.name == "wait_1"  # type: ignore[union-attr]
