"""``kitaru.llm()`` grown up: chat histories, structured output, streaming, costs from
litellm's cost map, budgets, and ``allm`` in async flows; against the local
OpenAI-compatible server, through litellm's real code path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

import kitaru
from conftest import kitaru_cli, subprocess_env
from kitaru import KitaruClient, flow
from kitaru_core.stack_registry import get_stack, register
from kitaru_core.testing.llm_server import FakeLLM


class Verdict(BaseModel):
    decision: Literal["ship", "revise"]
    reasons: list[str]


def _resume_in_process(exec_id: str) -> object:
    from kitaru_core.store.metadata_store import get_store

    get_store().db.execute(
        "UPDATE executions SET status = 'running' WHERE id = :id", {"id": exec_id}
    )
    return KitaruClient().executions.resume(exec_id).wait()


@flow
def chat_flow() -> str:
    history = [
        {"role": "user", "content": "Name a durable runtime."},
        {"role": "assistant", "content": "Kitaru."},
    ]
    return kitaru.llm("Why that one?", messages=history, model="fast", system="Be brief.")  # type: ignore[no-any-return]


def test_a_chat_history_is_sent_in_order_after_the_system_prompt(llm_stack: FakeLLM) -> None:
    handle = chat_flow.run()
    assert handle.wait().startswith("a fine answer")
    sent = llm_stack.requests[0]["body"]["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "Be brief."),
        ("user", "Name a durable runtime."),
        ("assistant", "Kitaru."),
        ("user", "Why that one?"),
    ]


@flow
def judge(draft: str) -> dict[str, object]:
    verdict = kitaru.llm(f"Judge: {draft}", model="fast", response_format=Verdict)
    assert isinstance(verdict, Verdict)
    return verdict.model_dump()


def test_structured_output_returns_a_validated_model_and_replays_it(llm_stack: FakeLLM) -> None:
    llm_stack.structured = '{"decision": "ship", "reasons": ["clear", "short"]}'
    handle = judge.run("a draft")
    assert handle.wait() == {"decision": "ship", "reasons": ["clear", "short"]}
    schema = llm_stack.requests[0]["body"]["response_format"]
    assert schema["type"] == "json_schema"
    assert schema["json_schema"]["schema"]["properties"]["decision"]["enum"] == ["ship", "revise"]
    assert _resume_in_process(handle.exec_id) == {"decision": "ship", "reasons": ["clear", "short"]}
    assert len(llm_stack.requests) == 1  # answered from the journal


@flow
def judge_or_explain(draft: str) -> str:
    try:
        kitaru.llm(f"Judge: {draft}", model="fast", response_format=Verdict)
    except kitaru.KitaruExecutionError as exc:
        return f"{exc} | raw={exc.raw_text}"  # type: ignore[attr-defined]
    return "parsed"


def test_an_answer_that_does_not_fit_or_a_refusal_is_an_execution_error_with_the_raw_text(
    llm_stack: FakeLLM,
) -> None:
    llm_stack.structured = '{"decision": "maybe"}'
    caught = judge_or_explain.run("x").wait()
    assert "not a valid Verdict" in caught and 'raw={"decision": "maybe"}' in caught
    llm_stack.structured = None
    llm_stack.refusal = "I cannot judge this."
    caught = judge_or_explain.run("y").wait()
    assert "the model refused: I cannot judge this." in caught
    handle = judge.run("z")
    assert handle.status == "failed"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [(c.name, c.status) for c in execution.checkpoints] == [("llm_1", "failed")]
    assert execution.llm_calls[0].error is not None  # paid for, and recorded as such


@flow
def streamer() -> str:
    chunks = list(kitaru.llm("Tell me a story.", model="fast", stream=True))
    return "|".join(chunks)


def test_a_stream_yields_chunks_records_the_whole_text_and_replays_it(
    llm_stack: FakeLLM,
) -> None:
    llm_stack.reply = "once upon a time"
    handle = streamer.run()
    joined = handle.wait()
    assert joined == "once| upon| a| time| (16)"  # word by word, as the server sent it
    assert llm_stack.requests[0]["body"]["stream"] is True
    execution = KitaruClient().executions.get(handle.exec_id)
    [call] = execution.llm_calls
    assert (call.input_tokens, call.output_tokens) == (4, 5)
    recorded = KitaruClient().artifacts.get(execution.checkpoints[0].artifact_id or "").load()
    assert recorded == "once upon a time (16)"
    assert _resume_in_process(handle.exec_id) == "once upon a time (16)"  # recorded: one chunk
    assert len(llm_stack.requests) == 1


def test_a_stream_killed_halfway_calls_the_model_again_only_for_that_call(
    llm_stack: FakeLLM, tmp_path: Path
) -> None:
    llm_stack.reply = "one two three four five six"
    script = tmp_path / "stream_kill.py"
    script.write_text(
        textwrap.dedent("""
        import os, signal
        import kitaru
        from kitaru import flow

        @flow
        def story() -> str:
            first = kitaru.llm("Plan it.", model="fast")
            told = []
            for chunk in kitaru.llm("Tell it.", model="fast", stream=True):
                told.append(chunk)
                if os.environ.get("CRASH") and len(told) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
            return first + " / " + "".join(told)

        if __name__ == "__main__":
            story.run()
    """)
    )
    crashed = subprocess.run(
        [sys.executable, str(script)],
        env=subprocess_env(CRASH="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr
    assert [r["body"]["messages"][-1]["content"] for r in llm_stack.requests] == [
        "Plan it.",
        "Tell it.",
    ]
    exec_id = KitaruClient().executions.latest().exec_id  # type: ignore[union-attr]
    resumed = kitaru_cli("executions", "resume", exec_id)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["body"]["messages"][-1]["content"] for r in llm_stack.requests] == [
        "Plan it.",
        "Tell it.",
        "Tell it.",  # only the unfinished call, again
    ]
    result = KitaruClient().executions.get(exec_id).result
    assert result == "one two three four five six (8) / one two three four five six (8)"


@flow
def three_calls() -> int:
    return sum(len(kitaru.llm(f"question {i}", model="fast")) for i in range(3))


def test_costs_per_execution_match_litellms_cost_map(llm_stack: FakeLLM) -> None:
    import litellm

    handle = three_calls.run()
    handle.wait()
    prices = litellm.model_cost["gpt-4o-mini"]
    expected = sum(
        len(" ".join(m["content"] for m in r["body"]["messages"]).split())
        * prices["input_cost_per_token"]
        + 5 * prices["output_cost_per_token"]
        for r in llm_stack.requests
    )
    totals = KitaruClient().executions.get(handle.exec_id).llm_totals
    assert totals["calls"] == 3
    assert totals["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert totals["cost_usd"] > 0


def _priced_stack(llm_stack: FakeLLM, tmp_path: Path, *, priced: bool = True) -> None:
    path = tmp_path / "priced.yaml"
    prices = "input_cost_per_token: 0.001\n              output_cost_per_token: 0.002"
    path.write_text(
        textwrap.dedent(f"""
        name: priced
        llm_gateway:
          flavor: litellm
          models:
            house:
              model: openai/house-model-unknown-to-litellm
              api_base: {llm_stack.api_base}
              api_key: "{{{{ secret.openai_api_key }}}}"
              {prices if priced else ""}
    """)
    )
    register(path, activate=True)
    get_stack().secret_provider.set("openai_api_key", "sk-test-priced")


@flow(max_cost_usd=0.02)
def spender(n: int) -> list[str]:
    answers = []
    for i in range(n):
        try:
            answers.append(kitaru.llm(f"q{i}", model="house"))
        except kitaru.KitaruBudgetExceededError as exc:
            answers.append(f"stopped after ${exc.spent_usd:.3f}")
            break
    return answers


def test_an_alias_may_price_a_model_and_a_budget_stops_calls_over_it(
    llm_stack: FakeLLM, tmp_path: Path
) -> None:
    _priced_stack(llm_stack, tmp_path)
    handle = spender.run(10)
    answers = handle.wait()
    # Each call: 1 input token x 0.001 + 5 output tokens x 0.002 = $0.011.
    assert answers[-1] == "stopped after $0.022"
    assert len(answers) == 3 and len(llm_stack.requests) == 2
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.llm_totals["cost_usd"] == pytest.approx(0.022)
    assert "over its budget" in execution.metadata["budget_exceeded"]
    shown = kitaru_cli("executions", "get", handle.exec_id)
    assert "budget: $0.022000 of $0.02" in shown.stdout
    assert "over budget" in shown.stdout
    assert _resume_in_process(handle.exec_id) == answers  # replays the same way
    assert len(llm_stack.requests) == 2


def test_a_model_nobody_prices_is_refused_under_a_cost_budget(
    llm_stack: FakeLLM, tmp_path: Path
) -> None:
    _priced_stack(llm_stack, tmp_path, priced=False)
    handle = spender.run(3)
    assert handle.status == "failed"
    with pytest.raises(kitaru.KitaruExecutionError) as failed:
        handle.wait()
    message = str(failed.value)
    assert "'openai/house-model-unknown-to-litellm'" in message and "no known price" in message
    assert "input_cost_per_token" in message and "max_cost_usd=0.02" in message
    assert llm_stack.requests == []  # refused before anything was sent
    # Without a cost budget the same alias is called (its cost is simply unknown).
    assert kitaru.llm("hello", model="house").startswith(llm_stack.reply)
    assert len(llm_stack.requests) == 1


@flow(max_llm_calls=2)
def chatty() -> int:
    for i in range(5):
        kitaru.llm(f"again {i}", model="fast")
    return 5


def test_max_llm_calls_fails_an_execution_that_does_not_catch_it(llm_stack: FakeLLM) -> None:
    handle = chatty.run()
    assert handle.status == "failed"
    with pytest.raises(kitaru.KitaruExecutionError, match="max_llm_calls=2"):
        handle.wait()
    assert len(llm_stack.requests) == 2
    shown = kitaru_cli("executions", "get", handle.exec_id)
    assert "2 of 2 calls" in shown.stdout


def test_budget_arguments_are_checked() -> None:
    def body() -> None:
        pass

    with pytest.raises(kitaru.KitaruUsageError, match="max_cost_usd must be a number"):
        flow(max_cost_usd=-1)(body)
    with pytest.raises(kitaru.KitaruUsageError, match="max_llm_calls must be a whole number"):
        flow(max_llm_calls=1.5)(body)  # type: ignore[arg-type]


@flow
async def parallel_questions() -> list[str]:
    return list(await asyncio.gather(*(kitaru.allm(f"part {i}", model="fast") for i in range(3))))


def test_allm_calls_gathered_in_an_async_flow_line_up_on_resume(llm_stack: FakeLLM) -> None:
    handle = parallel_questions.run()
    answers = handle.wait()
    assert len(answers) == 3 and len(llm_stack.requests) == 3
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [c.name for c in execution.checkpoints] == ["llm_1", "llm_2", "llm_3"]
    assert _resume_in_process(handle.exec_id) == answers
    assert len(llm_stack.requests) == 3


def test_a_call_without_prompt_or_messages_is_refused() -> None:
    with pytest.raises(kitaru.KitaruUsageError, match="needs a prompt or messages"):
        kitaru.llm(model="fast")
