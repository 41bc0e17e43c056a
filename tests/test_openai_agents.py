"""The OpenAI Agents SDK adapter: each model call and function tool call of a run in a
flow is a step, so a killed process resumes without repeating any that completed."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
from pathlib import Path

import openai_agent_flows
import pytest
from agent_flows import completed_steps

from conftest import kitaru_cli, run_killed
from kitaru import KitaruClient
from kitaru.adapters.openai_agents import KitaruRunner


def _effects(path: Path) -> collections.Counter[str]:
    return collections.Counter(path.read_text().split()) if path.exists() else collections.Counter()


_recorded: dict[str, collections.Counter[str]] = {}


def _killed_then_resumed(
    flow: str, effects: Path, **env: str
) -> tuple[str, collections.Counter[str]]:
    """Run ``flow`` killed as ``env`` says, resume it; (its id, the effects before)."""
    exec_id = run_killed(f"import openai_agent_flows as f; f.{flow}.run('t')", effects, **env)
    before = _effects(effects)
    _recorded[exec_id] = completed_steps(exec_id)
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    return exec_id, before


def test_model_calls_and_tool_calls_are_steps_and_a_kill_repeats_none(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id, before = _killed_then_resumed(
        "scout", effects, KITARU_TEST_CRASH_AT="scout.model_request#2"
    )
    assert before == {"scout.model_request#1": 1, "scout.search": 1, "scout.fetch": 1}
    assert _effects(effects) - before == {"scout.model_request#2": 1}
    execution = KitaruClient().executions.get(exec_id)
    assert execution.result == "scout: fetch(scout) + search(scout)"
    assert collections.Counter(c.name for c in execution.checkpoints) == {
        "scout.model_request": 2,
        "scout.search": 1,
        "scout.fetch": 1,
    }
    assert len(execution.llm_calls) == 2


def test_model_calls_recorded_as_a_dict_by_an_earlier_kitaru_still_replay(
    tmp_path: Path,
) -> None:
    from kitaru_core.serialization import serialize
    from kitaru_core.store.metadata_store import get_store

    effects = tmp_path / "effects.txt"
    exec_id = run_killed(
        "import openai_agent_flows as f; f.scout.run('t')",
        effects,
        KITARU_TEST_CRASH_AT="scout.model_request#2",
    )
    db = get_store().db
    (artifact_id, stored), *_ = db.fetchall(
        "SELECT id, inline FROM artifacts WHERE exec_id = :id AND name = :name",
        {"id": exec_id, "name": "scout.model_request"},
    )
    old = serialize(json.loads(bytes(stored)), what="a dict")  # how it was recorded
    db.execute(
        "UPDATE artifacts SET inline = :b, key = :k, size = :n, serializer = :s, "
        "type_ref = :t WHERE id = :id",
        {
            "b": old.data,
            "k": hashlib.sha256(old.data).hexdigest(),
            "n": len(old.data),
            "s": old.serializer,
            "t": old.type_ref,
            "id": artifact_id,
        },
    )
    before = _effects(effects)
    resumed = kitaru_cli("executions", "resume", exec_id, KITARU_TEST_EFFECTS=str(effects))
    assert resumed.returncode == 0, resumed.stderr
    assert _effects(effects) - before == {"scout.model_request#2": 1}
    assert KitaruClient().executions.get(exec_id).result == "scout: fetch(scout) + search(scout)"


def test_two_runs_gathered_resume_from_a_kill_at_every_step(tmp_path: Path) -> None:
    expected = ["left: fetch(left) + search(left)", "right: rank(right) + search(right)"]
    for kill_at in range(1, 9):
        effects = tmp_path / f"effects-{kill_at}.txt"
        exec_id, _before = _killed_then_resumed(
            "two_scouts", effects, KITARU_TEST_CRASH_AT_EFFECT=str(kill_at)
        )
        assert KitaruClient().executions.get(exec_id).result == expected, kill_at
        ran = _effects(effects)
        assert len(ran) == 8 and all(n <= 2 for n in ran.values()), (kill_at, ran)
        for step in _recorded[exec_id]:  # completed before the kill: never again
            assert ran[step] == 1, (kill_at, step, ran)


def test_a_streamed_run_replays_its_recorded_events_after_a_kill(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id, before = _killed_then_resumed(
        "streamed_scout", effects, KITARU_TEST_CRASH_AT="streamer.model_request#2"
    )
    after = _effects(effects) - before
    assert after["streamer.model_request#1"] == 0 and after["streamer.search"] == 0
    assert after["streamer.model_request#2"] == 1
    assert after["delta"] > 0  # the caller saw the answer's text stream
    result = KitaruClient().executions.get(exec_id).result
    assert result == "streamer: fetch(streamer) + search(streamer)"


def test_a_handoff_is_durable_too(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id, before = _killed_then_resumed(
        "handing_off", effects, KITARU_TEST_CRASH_AT="expert.model_request#2"
    )
    assert _effects(effects) - before == {"expert.model_request#2": 1}
    steps = [c.name for c in KitaruClient().executions.get(exec_id).checkpoints]
    assert steps[:2] == ["triage.model_request", "expert.model_request"]
    assert KitaruClient().executions.get(exec_id).result == "expert: fetch(expert) + search(expert)"


def test_an_agent_reached_by_a_handoff_object_is_durable_too(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id, before = _killed_then_resumed(
        "handing_off_by_handoff", effects, KITARU_TEST_CRASH_AT="expert.model_request#2"
    )
    assert before["expert.search"] == 1 and before["expert.fetch"] == 1
    # The handoff's callback runs again (it is the run's code); no step does.
    assert _effects(effects) - before == {"on_handoff": 1, "expert.model_request#2": 1}
    steps = [c.name for c in KitaruClient().executions.get(exec_id).checkpoints]
    assert steps[:2] == ["triage.model_request", "expert.model_request"]
    assert {"expert.search", "expert.fetch"} <= set(steps)


def test_an_mcp_servers_tool_calls_are_steps_and_not_made_again(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id, before = _killed_then_resumed(
        "mcp_scout", effects, KITARU_TEST_CRASH_AT="definer.model_request#2"
    )
    assert before["mcp:lookup:definer"] == 1
    assert _effects(effects) - before == {"definer.model_request#2": 1}  # the server not asked
    execution = KitaruClient().executions.get(exec_id)
    assert [c.name for c in execution.checkpoints] == [
        "definer.model_request",
        "definer.lookup",
        "definer.model_request",
    ]
    assert "definer: a record of every step" in execution.result  # the server's answer


def test_an_agent_used_as_a_tool_is_one_step_and_not_run_again(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    exec_id, before = _killed_then_resumed(
        "agent_as_tool", effects, KITARU_TEST_CRASH_AT="lead.model_request#2"
    )
    assert before["helper.model_request#2"] == 1
    assert _effects(effects) - before == {"lead.model_request#2": 1}
    result = KitaruClient().executions.get(exec_id).result
    assert result == "lead: helper: fetch(helper) + search(helper)"


def test_a_budget_stops_the_runs_model_calls() -> None:
    handle = openai_agent_flows.capped_scout.run("t")
    assert handle.wait() == "stopped after 1 model call(s)"


def test_calls_are_priced_and_an_unpriced_model_is_refused_under_a_cost_limit() -> None:
    handle = openai_agent_flows.priced_scout.run("t")
    answer = handle.wait()
    assert answer.startswith("priced: search(priced); refused: step 'free.model_request'")
    assert "'ScriptedModel' has no price" in answer
    calls = KitaruClient().executions.get(handle.exec_id).llm_calls
    one = 1000 * 0.15 / 1e6 + 100 * 0.6 / 1e6  # gpt-4o-mini's price per token
    assert [c.model for c in calls] == ["gpt-4o-mini"] * 2  # nothing sent after
    assert [c.cost_usd for c in calls] == [pytest.approx(one)] * 2


def test_run_sync_in_a_sync_flow(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    _exec_id, before = _killed_then_resumed(
        "sync_scout", effects, KITARU_TEST_CRASH_AT="syncer.model_request#2"
    )
    assert _effects(effects) - before == {"syncer.model_request#2": 1}


@pytest.mark.parametrize("how", ["run", "run_sync", "run_streamed"])
def test_outside_a_flow_it_is_the_plain_runner(how: str) -> None:
    agent = openai_agent_flows.make("plain", ("search", "fetch"))
    if how == "run_sync":
        output = KitaruRunner.run_sync(agent, "t").final_output
    else:

        async def run() -> str:
            if how == "run":
                return str((await KitaruRunner.run(agent, "t")).final_output)
            streamed = KitaruRunner.run_streamed(agent, "t")
            async for _event in streamed.stream_events():
                pass
            return str(streamed.final_output)

        output = asyncio.run(run())
    assert output == "plain: fetch(plain) + search(plain)"
    assert KitaruClient().executions.list() == []
