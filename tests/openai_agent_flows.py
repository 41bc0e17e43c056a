"""OpenAI Agents SDK agents in Kitaru flows, offline: the SDK's own ``ScriptedModel``
answers from what the agent was told so far (two tool calls at once, then the answer), so
a resumed process gets the same answers. Effects name the steps that ran
(``scout.model_request#1``, ``scout.search``); ``KITARU_TEST_CRASH_AT`` kills the
process as the named one begins."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path
from typing import Any

from agent_flows import step_effect
from agents import Agent, function_tool, handoff, set_tracing_disabled
from agents.mcp import MCPServerStdio
from agents.testing import ScriptedModel
from agents.testing.model import ModelCall, ModelStep, assistant_message, function_call
from agents.usage import Usage

import kitaru
from kitaru import flow
from kitaru.adapters.openai_agents import KitaruRunner

set_tracing_disabled(True)  # offline: no traces are sent


def _outputs(call: ModelCall) -> list[str]:
    items = call.input if isinstance(call.input, list) else []
    return [
        str(item.get("output"))
        for item in items
        if isinstance(item, dict)
        and item.get("type") == "function_call_output"
        and not str(item.get("call_id")).endswith("-h")  # a handoff's, not a tool's
    ]


def scripted(
    name: str,
    tools: tuple[str, ...],
    *,
    hand_to: str | None = None,
    plays: type[ScriptedModel] = ScriptedModel,
    usage: Usage | None = None,
) -> ScriptedModel:
    def respond(call: ModelCall) -> Any:
        done = _outputs(call)
        step_effect(f"{name}.model_request#{1 if not done else 2}")
        if hand_to is not None and not done:
            return [function_call(f"transfer_to_{hand_to}", {}, call_id=f"{name}-h")]
        if not done:
            # An agent as a tool takes input; the MCP server's lookup a term.
            key = {"lead": "input", "definer": "term"}.get(name, "topic")
            return [function_call(t, {key: name}, call_id=f"{name}-{t}") for t in tools]
        return [assistant_message(f"{name}: {' + '.join(sorted(done))}")]

    return plays([ModelStep.respond(respond) for _ in range(20)], default_usage=usage)


def topic_tool(agent: str, tool: str) -> Any:
    async def run(topic: str) -> str:
        await asyncio.sleep(random.uniform(0, 0.02))
        step_effect(f"{agent}.{tool}")
        return f"{tool}({topic})"

    run.__name__ = tool
    return function_tool(run, name_override=tool)


def make(name: str, tools: tuple[str, ...], **kwargs: Any) -> Agent[Any]:
    return Agent(
        name=name,
        model=scripted(name, tools),
        tools=[topic_tool(name, t) for t in tools],
        **kwargs,
    )


@flow
async def scout(topic: str) -> str:
    agent = make("scout", ("search", "fetch"))
    return str((await KitaruRunner.run(agent, topic)).final_output)


@flow
async def two_scouts(topic: str) -> list[str]:
    a, b = make("left", ("search", "fetch")), make("right", ("search", "rank"))
    done = await asyncio.gather(KitaruRunner.run(a, topic), KitaruRunner.run(b, topic))
    return [str(r.final_output) for r in done]


@flow
async def streamed_scout(topic: str) -> str:
    agent = make("streamer", ("search", "fetch"))
    result = KitaruRunner.run_streamed(agent, topic)
    async for event in result.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            step_effect("delta")
    return str(result.final_output)


@flow
async def handing_off(topic: str) -> str:
    expert = make("expert", ("search", "fetch"))
    triage = Agent(name="triage", model=scripted("triage", (), hand_to="expert"), handoffs=[expert])
    return str((await KitaruRunner.run(triage, topic)).final_output)


@flow
async def handing_off_by_handoff(topic: str) -> str:
    expert = make("expert", ("search", "fetch"))

    def on_handoff(context: Any) -> None:
        step_effect("on_handoff")  # the run's own code: called again on resume

    triage = Agent(
        name="triage",
        model=scripted("triage", (), hand_to="expert"),
        handoffs=[handoff(expert, on_handoff=on_handoff)],
    )
    return str((await KitaruRunner.run(triage, topic)).final_output)


@flow
async def mcp_scout(topic: str) -> str:
    lookup_server = Path(__file__).parent / "mcp_lookup_server.py"
    async with MCPServerStdio(
        params={"command": sys.executable, "args": [str(lookup_server)], "env": dict(os.environ)},
        name="lookup",
    ) as server:
        agent = Agent(name="definer", model=scripted("definer", ("lookup",)), mcp_servers=[server])
        return str((await KitaruRunner.run(agent, topic)).final_output)


@flow
async def agent_as_tool(topic: str) -> str:
    helper = make("helper", ("search", "fetch"))
    lead = Agent(
        name="lead",
        model=scripted("lead", ("ask_helper",)),
        tools=[helper.as_tool(tool_name="ask_helper", tool_description="Ask the helper")],
    )
    return str((await KitaruRunner.run(lead, topic)).final_output)


@flow(max_llm_calls=1)
async def capped_scout(topic: str) -> str:
    try:
        return str(
            (await KitaruRunner.run(make("capped", ("search", "fetch")), topic)).final_output
        )
    except kitaru.KitaruBudgetExceededError as exc:
        return f"stopped after {exc.calls} model call(s)"


class PlaysGpt4oMini(ScriptedModel):
    """A scripted model named as the model it plays, so it is priced as that one."""

    model = "gpt-4o-mini"


@flow(max_cost_usd=0.001)
async def priced_scout(topic: str) -> str:
    """Two priced calls count against the limit; then an unpriced model is refused."""
    used = Usage(requests=1, input_tokens=1000, output_tokens=100)
    model = scripted("priced", ("search",), plays=PlaysGpt4oMini, usage=used)
    priced = Agent(name="priced", model=model, tools=[topic_tool("priced", "search")])
    first = (await KitaruRunner.run(priced, topic)).final_output
    try:
        return str((await KitaruRunner.run(make("free", ("search",)), topic)).final_output)
    except kitaru.KitaruUsageError as exc:
        return f"{first}; refused: {exc}"


@flow
def sync_scout(topic: str) -> str:
    return str(KitaruRunner.run_sync(make("syncer", ("search", "fetch")), topic).final_output)
