"""The PydanticAI adapter: each model request and tool call is a checkpoint in a flow,
so a killed run resumes without repeating any that completed."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time
from pathlib import Path

import agent_flows
import pytest

from conftest import kitaru_cli, subprocess_env
from kitaru import KitaruClient, diff


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
        "model_request",
        "search",
        "model_request",
        "summarize",
        "model_request",
    ]
    search = execution.checkpoints[1]
    assert search.metadata == {"tool_args": {"query": "durable agents"}}
    result = KitaruClient().artifacts.get(search.artifact_id or "").load()
    assert result == "plain results for durable agents"
    assert len(execution.llm_calls) == 3  # each request is one of the execution's LLM calls
    assert [c.checkpoint for c in execution.llm_calls] == ["model_request"] * 3


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
    crashed = subprocess.run(
        [sys.executable, "-c", "import agent_flows; agent_flows.research.run('q')"],
        env=subprocess_env(KITARU_TEST_EFFECTS=str(effects), KITARU_TEST_CRASH_AT="turn3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr
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


def test_the_diff_of_two_runs_shows_which_tool_call_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = agent_flows.research.run("q").exec_id
    monkeypatch.setenv("SEARCH_FLAVOR", "fresh")
    second = agent_flows.research.run("q").exec_id
    rows = diff(first, second).checkpoints
    assert [r.name for r in rows] == [
        "model_request",
        "search",
        "model_request",
        "summarize",
        "model_request",
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
        "model_request",
        "search",
        "model_request",
        "summarize",
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
