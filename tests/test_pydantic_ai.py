"""The PydanticAI adapter: each model request and tool call is a checkpoint in a flow,
so a killed run resumes without repeating any that completed."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import agent_flows
import pytest

import kitaru
from conftest import kitaru_cli, run_killed, subprocess_env
from kitaru import KitaruClient, diff
from kitaru.adapters.pydantic_ai import KitaruAgent

RESEARCH = "import agent_flows; agent_flows.research.run('q')"


def _effects(path: Path) -> collections.Counter[str]:
    return collections.Counter(path.read_text().split()) if path.exists() else collections.Counter()


def test_model_requests_and_tool_calls_are_checkpoints_with_their_arguments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KITARU_TEST_EFFECTS", str(tmp_path / "effects.txt"))
    handle = agent_flows.research.run("what is durable?")
    answer = handle.wait()
    assert answer == "answer from: summary of plain results for durable agents"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [c.name for c in execution.checkpoints] == [
        "researcher.model_request",
        "researcher.search",
        "researcher.model_request",
        "researcher.summarize",
        "researcher.model_request",
    ]
    search = execution.checkpoints[1]
    assert search.metadata == {"tool_args": {"query": "durable agents"}}
    result = KitaruClient().artifacts.get(search.artifact_id or "").load()
    assert result == "plain results for durable agents"
    assert len(execution.llm_calls) == 3  # each request is one of the execution's LLM calls
    assert [c.checkpoint for c in execution.llm_calls] == ["researcher.model_request"] * 3


def test_the_same_agent_outside_a_flow_is_the_plain_agent() -> None:
    async def plain() -> str:
        return str((await agent_flows.durable.run("hi")).output)

    assert asyncio.run(plain()) == "answer from: summary of plain results for durable agents"
    assert agent_flows.durable.run_sync("hi").output.startswith("answer from")
    assert KitaruClient().executions.list() == []
    assert agent_flows.research_sync.run("in a sync flow").wait().startswith("answer from")


def test_killed_after_the_second_tool_call_it_resumes_with_one_more_model_request(
    tmp_path: Path,
) -> None:
    effects = tmp_path / "effects.txt"
    exec_id = run_killed(RESEARCH, effects, KITARU_TEST_CRASH_AT="turn3")
    before = _effects(effects)
    assert before == {
        "model:turn1": 1,
        "tool:search": 1,
        "model:turn2": 1,
        "tool:summarize": 1,
        "model:turn3": 1,  # killed as it began
    }
    exec_id = KitaruClient().executions.latest().exec_id  # type: ignore[union-attr]
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    after = _effects(effects) - before
    assert after == {"model:turn3": 1}  # exactly one more model request, no tool call
    done = KitaruClient().executions.get(exec_id)
    assert done.result == "answer from: summary of plain results for durable agents"


def test_model_responses_recorded_as_a_list_by_an_earlier_kitaru_still_replay(
    tmp_path: Path,
) -> None:
    """Responses were once stored as PydanticAI's list of one message; an execution
    recorded then resumes without repeating them."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    from kitaru_core.store.metadata_store import get_store

    effects = tmp_path / "effects.txt"
    exec_id = run_killed(RESEARCH, effects, KITARU_TEST_CRASH_AT="turn3")
    db = get_store().db
    rows = db.fetchall(
        "SELECT id, inline FROM artifacts WHERE exec_id = :id AND name = :name",
        {"id": exec_id, "name": "researcher.model_request"},
    )
    assert len(rows) == 2
    for artifact_id, stored in rows:
        listed = ModelMessagesTypeAdapter.validate_json(b"[" + bytes(stored) + b"]")
        old = ModelMessagesTypeAdapter.dump_json(listed)
        db.execute(
            "UPDATE artifacts SET inline = :b, key = :k, size = :n WHERE id = :id",
            {"b": old, "k": hashlib.sha256(old).hexdigest(), "n": len(old), "id": artifact_id},
        )
    before = _effects(effects)
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    assert _effects(effects) - before == {"model:turn3": 1}
    done = KitaruClient().executions.get(exec_id)
    assert done.result == "answer from: summary of plain results for durable agents"


def test_the_diff_of_two_runs_shows_which_tool_call_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = agent_flows.research.run("q").exec_id
    monkeypatch.setenv("SEARCH_FLAVOR", "fresh")
    second = agent_flows.research.run("q").exec_id
    rows = diff(first, second).checkpoints
    assert [r.name for r in rows] == [
        "researcher.model_request",
        "researcher.search",
        "researcher.model_request",
        "researcher.summarize",
        "researcher.model_request",
    ]
    search = rows[1]
    assert search.status == "changed"
    assert '-"plain results for durable agents"' in search.diff.replace("'", '"') or (
        "-plain results" in search.diff
    )
    assert "fresh results for durable agents" in search.diff
    assert "fresh results" in rows[3].diff  # the summary read the new search result


def test_the_flows_budget_counts_the_agents_model_requests() -> None:
    handle = agent_flows.capped.run("q")
    assert handle.wait() == "stopped after 2 model requests"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert "max_llm_calls=2" in execution.metadata["budget_exceeded"]
    assert [c.name for c in execution.checkpoints] == [
        "researcher.model_request",
        "researcher.search",
        "researcher.model_request",
        "researcher.summarize",
    ]


def test_the_research_agent_example_runs_offline_and_asks_before_it_answers(
    tmp_path: Path,
) -> None:
    example = Path(__file__).parent.parent / "examples" / "research_agent.py"
    env = subprocess_env(OPENAI_API_KEY="")
    started = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    exec_id, status = started.stdout.split()[:2]
    assert status == "waiting"
    answered = kitaru_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert answered.returncode == 0, answered.stderr
    deadline = time.monotonic() + 60
    while KitaruClient().executions.get(exec_id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = KitaruClient().executions.get(exec_id).result
    assert result["published"] is True and "journal" in result["answer"]
    shown = kitaru_cli("executions", "get", exec_id)
    assert "budget: " in shown.stdout and "3 of 10 calls" in shown.stdout


def test_mcp_tool_calls_are_checkpoints_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.txt"
    monkeypatch.setenv("KITARU_TEST_EFFECTS", str(effects))
    handle = agent_flows.define.run("journal")
    assert handle.wait() == "defined: journal: a record of every step"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [c.name for c in execution.checkpoints] == ["model_request", "lookup", "model_request"]
    assert execution.checkpoints[1].metadata == {"tool_args": {"term": "journal"}}
    from kitaru_core.store.metadata_store import get_store

    get_store().db.execute(
        "UPDATE executions SET status = 'running' WHERE id = :id", {"id": handle.exec_id}
    )
    assert KitaruClient().executions.resume(handle.exec_id).wait() == handle.wait()
    assert _effects(effects)["mcp:lookup:journal"] == 1  # the MCP server was not asked again
    assert _effects(effects)["model:mcp1"] == 1


# -- agents side by side, streaming, iteration, run-time choices ----------------------------

SIDE_BY_SIDE = ["alpha: fetch(alpha) + search(alpha)", "beta: rank(beta) + search(beta)"]
SIDE_STEPS = {
    f"{agent}.{step}"
    for agent, tools in (("alpha", ("search", "fetch")), ("beta", ("search", "rank")))
    for step in ("model_request#1", "model_request#2", *tools)
}


def _start_killed(flow: str, args: str, effects: Path, **env: str) -> str:
    """Run ``flow`` in a process that is killed as ``env`` says; the execution's id."""
    return run_killed(f"import agent_flows; agent_flows.{flow}.run({args})", effects, **env)


def test_two_agents_gathered_resume_from_a_kill_at_every_step_without_repeating_one(
    tmp_path: Path,
) -> None:
    """Two agents run side by side, each calling two tools at once; the process is
    killed as each of their 8 steps begins. Every resume lines up with the journal
    (replayed steps answer at once, so the order of arrival changes), and no step that
    completed before the kill runs again."""
    for kill_at in range(1, len(SIDE_STEPS) + 1):
        effects = tmp_path / f"effects-{kill_at}.txt"
        exec_id = _start_killed(
            "side_by_side", "'t'", effects, KITARU_TEST_CRASH_AT_EFFECT=str(kill_at)
        )
        recorded = agent_flows.completed_steps(exec_id)
        resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
        assert resumed.returncode == 0, (kill_at, resumed.stderr)
        assert KitaruClient().executions.get(exec_id).result == SIDE_BY_SIDE
        ran = _effects(effects)
        assert set(ran) == SIDE_STEPS
        for step in recorded:
            assert ran[step] == 1, (kill_at, step, ran)  # completed before the kill: once
        assert all(count <= 2 for count in ran.values()), ran  # in flight at the kill: twice


def test_two_agents_with_the_same_tool_name_are_told_apart_in_the_journal() -> None:
    handle = agent_flows.side_by_side.run("t")
    assert handle.wait() == SIDE_BY_SIDE
    names = collections.Counter(
        c.name for c in KitaruClient().executions.get(handle.exec_id).checkpoints
    )
    assert names == {
        "alpha.model_request": 2,
        "alpha.search": 1,
        "alpha.fetch": 1,
        "beta.model_request": 2,
        "beta.search": 1,
        "beta.rank": 1,
    }


STREAMED = "streamer: fetch(streamer) + search(streamer)"


@pytest.mark.parametrize("flow", ["streamed", "streamed_per_run"])
def test_streamed_requests_are_steps_and_a_resume_replays_their_events(
    flow: str, tmp_path: Path
) -> None:
    """An event stream handler (the agent's own, or one given to the run) makes every
    model request a streamed one: each is still a step, and a resumed run streams the
    recorded response to the handler again instead of asking the model."""
    agent = "streamer" if flow == "streamed" else "per_run"
    effects = tmp_path / "effects.txt"
    exec_id = _start_killed(flow, "'t'", effects, KITARU_TEST_CRASH_AT=f"{agent}.model_request#2")
    before = _effects(effects)
    assert before[f"{agent}.model_request#1"] == 1 and before["event"] > 0
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    after = _effects(effects) - before
    assert after[f"{agent}.model_request#1"] == 0  # answered from the journal
    assert after[f"{agent}.search"] == 0 and after[f"{agent}.fetch"] == 0
    assert after[f"{agent}.model_request#2"] == 1
    assert after["event"] > 0  # the handler saw the replayed stream too
    result = KitaruClient().executions.get(exec_id).result
    assert result.strip() == STREAMED.replace("streamer", agent)
    steps = [c.name for c in KitaruClient().executions.get(exec_id).checkpoints]
    assert steps.count(f"{agent}.model_request") == 2


def test_a_budget_stops_streamed_requests_as_it_stops_the_others() -> None:
    handle = agent_flows.streamed_capped.run("t")
    assert handle.wait() == "stopped after 1 model request(s)"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert "max_llm_calls=1" in execution.metadata["budget_exceeded"]
    assert len(execution.llm_calls) == 1


@pytest.mark.parametrize(
    ("flow", "args"),
    [
        ("run_stream_flow", "'t'"),
        ("run_stream_events_flow", "'t'"),
        ("iter_flow", "'t', False"),
        ("iter_flow", "'t', True"),
    ],
)
def test_run_stream_run_stream_events_and_iter_are_durable(
    flow: str, args: str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.txt"
    exec_id = _start_killed(flow, args, effects, KITARU_TEST_CRASH_AT="per_run.model_request#2")
    before = _effects(effects)
    assert before["per_run.search"] == 1 and before["per_run.fetch"] == 1
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    after = _effects(effects) - before
    assert after == {"per_run.model_request#2": 1}  # nothing that completed ran again
    result = KitaruClient().executions.get(exec_id).result
    answer = result[-1] if isinstance(result, list) else result
    assert answer.strip() == "per_run: fetch(per_run) + search(per_run)"
    if flow == "iter_flow":
        assert result[:-1] == [
            "UserPromptNode",
            "ModelRequestNode",
            "CallToolsNode",
            "ModelRequestNode",
            "CallToolsNode",
            "End",
        ]


def test_a_model_chosen_at_run_time_is_used_and_named_in_the_record() -> None:
    async def plain() -> str:
        return str((await agent_flows.per_run.run("t", model=agent_flows.other_model)).output)

    assert asyncio.run(plain()) == "other: fetch(other) + search(other)"
    assert KitaruClient().executions.list() == []  # outside a flow: the plain agent
    handle = agent_flows.with_run_time_model.run("t")
    assert handle.wait() == "other: fetch(other) + search(other)"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [c.model for c in execution.llm_calls] == ["other-model", "other-model"]


def test_toolsets_given_to_a_run_are_steps_too() -> None:
    handle = agent_flows.with_run_time_toolsets.run("t")
    assert handle.wait() == "toolsets: lookup(toolsets)"
    steps = [c.name for c in KitaruClient().executions.get(handle.exec_id).checkpoints]
    assert steps == ["toolsets.model_request", "toolsets.lookup", "toolsets.model_request"]


def test_an_override_of_model_and_tools_is_honoured_in_and_out_of_a_flow() -> None:
    grep_model = agent_flows.two_tool_model("other", ("grep",), model_name="other-model")
    with agent_flows.per_run.override(
        model=grep_model, tools=[agent_flows.topic_tool("per_run", "grep")]
    ):
        assert agent_flows.per_run.run_sync("t").output == "other: grep(other)"
    handle = agent_flows.with_override.run("t")
    assert handle.wait() == "other: grep(other)"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [c.name for c in execution.checkpoints] == [
        "per_run.model_request",
        "per_run.grep",
        "per_run.model_request",
    ]
    assert {c.model for c in execution.llm_calls} == {"other-model"}


def _answer_and_finish(exec_id: str, wait: str, value: str, effects: Path) -> Any:
    answered = kitaru_cli(
        "executions",
        "input",
        exec_id,
        "--wait",
        wait,
        "--value",
        value,
        KITARU_TEST_EFFECTS=str(effects),
    )
    assert answered.returncode == 0, answered.stderr
    deadline = time.monotonic() + 60
    while (execution := KitaruClient().executions.get(exec_id)).status != "completed":
        assert execution.status not in ("failed", "cancelled"), execution.error
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return execution.result


@pytest.mark.parametrize(
    ("flow", "effect", "answer"),
    [
        ("model_retry_flow", "checked:bad", "got use a good value"),
        ("tool_failed_flow", "refused:bad", "got that value is refused"),
    ],
)
def test_a_tool_asking_the_model_to_retry_is_an_answer_not_a_failure_to_retry(
    flow: str, effect: str, answer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``@flow(retries=2)`` a tool raising ``ModelRetry`` or ``ToolFailed`` runs its
    body once: the exception is the agent's answer, recorded and raised again on replay."""
    effects = tmp_path / "effects.txt"
    monkeypatch.setenv("KITARU_TEST_EFFECTS", str(effects))
    handle = getattr(agent_flows, flow).run()
    assert handle.wait() == answer
    assert _effects(effects)[effect] == 1
    steps = KitaruClient().executions.get(handle.exec_id).checkpoints
    assert [s.status for s in steps] == ["completed"] * 3
    from kitaru_core.store.metadata_store import get_store

    get_store().db.execute(  # as if the process died there: the replay raises it again
        "UPDATE executions SET status = 'running' WHERE id = :id", {"id": handle.exec_id}
    )
    assert KitaruClient().executions.resume(handle.exec_id).wait() == answer
    assert _effects(effects)[effect] == 1


def test_usage_limits_stop_a_run_in_a_flow_as_outside_one() -> None:
    handle = agent_flows.usage_limited.run()
    assert handle.wait().startswith("limited: The next request would exceed the request_limit")


def test_a_deferred_tool_call_waits_for_a_person_with_no_process_held(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    handle = agent_flows.deferred_approval.run()
    assert KitaruClient().executions.get(handle.exec_id).status == "waiting"
    result = _answer_and_finish(handle.exec_id, "approve_deploy", "true", effects)
    assert result == "deployed: api is live"
    assert _effects(effects) == {"deploy:api": 1}


def test_a_hitl_tool_call_is_a_wait_whose_answer_is_the_tools_result(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    crashed_env = {"KITARU_TEST_EFFECTS": str(effects)}
    started = subprocess.run(
        [sys.executable, "-c", "import agent_flows; print(agent_flows.pay.run().exec_id)"],
        env=subprocess_env(**crashed_env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    exec_id = started.stdout.split()[-1]
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "waiting"
    wait = execution.pending_wait
    assert wait.question == "Send 12.5 EUR to ada?"
    assert _answer_and_finish(exec_id, wait.name, "true", effects) == "approved: True"
    assert _effects(effects) == {"payer.model_request#1": 1, "payer.model_request#2": 1}

    async def outside() -> Any:  # the plain agent: the call is deferred with its question
        return (await agent_flows.payer.run("pay ada")).output

    deferred = asyncio.run(outside())
    assert [c.tool_name for c in deferred.calls] == ["approve_payment"]
    assert deferred.metadata[deferred.calls[0].tool_call_id] == {
        "question": "Send 12.5 EUR to ada?"
    }


def test_tool_settings_give_a_tool_retries_a_timeout_or_no_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    effects = tmp_path / "effects.txt"
    monkeypatch.setenv("KITARU_TEST_EFFECTS", str(effects))
    handle = agent_flows.tuned.run()
    assert handle.wait() == "flaky ok | now"
    assert _effects(effects) == {"flaky": 2, "now": 1}  # timed out once, then retried
    steps = KitaruClient().executions.get(handle.exec_id).checkpoints
    assert [s.name for s in steps] == ["tuned.model_request", "tuned.flaky", "tuned.model_request"]
    assert steps[1].attempts == 2
    with pytest.raises(kitaru.KitaruUsageError, match="unknown setting"):
        KitaruAgent(agent_flows.deferring, tool_settings={"deploy": {"retry": 3}})


def test_a_whole_turn_as_one_step_is_not_run_again_after_a_kill(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id = _start_killed("whole_turn", "'t'", effects, KITARU_TEST_CRASH_AT="after-turn")
    before = _effects(effects)
    assert before["turner.model_request#2"] == 1
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    assert _effects(effects) == before  # the recorded turn answered: nothing ran again
    execution = KitaruClient().executions.get(exec_id)
    assert execution.result == "turner: fetch(turner) + search(turner) (4 messages)"
    assert [c.name for c in execution.checkpoints] == ["turner.run"]
    assert len(execution.llm_calls) == 1


def test_a_whole_turn_is_one_llm_call_priced_as_the_sum_of_its_requests() -> None:
    handle = agent_flows.priced_whole_turn.run()
    assert handle.wait() == "priced"
    [call] = KitaruClient().executions.get(handle.exec_id).llm_calls
    assert call.model == "gpt-4o-mini"
    assert (call.input_tokens, call.output_tokens) == (2000, 200)  # two requests
    one = 1000 * 0.15 / 1e6 + 100 * 0.6 / 1e6  # gpt-4o-mini's price per token
    assert call.cost_usd == pytest.approx(2 * one)


def test_each_request_is_priced_and_an_unknown_price_stays_unknown() -> None:
    handle = agent_flows.priced_then_unpriced.run()
    assert handle.wait() == "priced free free"
    calls = KitaruClient().executions.get(handle.exec_id).llm_calls
    one = 1000 * 0.15 / 1e6 + 100 * 0.6 / 1e6  # gpt-4o-mini's price per token
    assert [c.cost_usd for c in calls] == [pytest.approx(one), pytest.approx(one), None, None]
    assert [c.model for c in calls][2:] == ["function:<lambda>:"] * 2


def test_under_a_cost_limit_a_model_with_no_known_price_is_refused_before_it_runs() -> None:
    handle = agent_flows.unpriced_under_a_cost_limit.run()
    answer = handle.wait()
    assert answer.startswith("priced; refused: step 'free.model_request' was not run")
    assert "'function:<lambda>:' has no price" in answer
    assert "max_llm_calls" in answer  # how to go on
    calls = KitaruClient().executions.get(handle.exec_id).llm_calls
    assert [c.model for c in calls] == ["gpt-4o-mini", "gpt-4o-mini"]  # nothing sent after


def test_run_sync_in_a_sync_flow_resumes_its_parallel_tool_calls(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id = _start_killed(
        "sync_side", "'t'", effects, KITARU_TEST_CRASH_AT="per_run.model_request#2"
    )
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    assert _effects(effects)["per_run.search"] == 1 and _effects(effects)["per_run.fetch"] == 1
    assert (
        KitaruClient().executions.get(exec_id).result == "per_run: fetch(per_run) + search(per_run)"
    )


@pytest.mark.parametrize(
    "flow", ["streamed", "run_stream_flow", "run_stream_events_flow", "iter_flow", "whole_turn"]
)
def test_outside_a_flow_every_way_of_running_is_the_plain_agents(flow: str) -> None:
    """The flow bodies' code, called as plain functions: the same answers, nothing recorded."""
    body = getattr(agent_flows, flow).func
    args: tuple[Any, ...] = ("t", True) if flow == "iter_flow" else ("t",)
    result = asyncio.run(body(*args))
    answer = result[-1] if isinstance(result, list) else result
    assert "fetch(" in answer and "search(" in answer
    assert KitaruClient().executions.list() == []
