"""A PydanticAI agent of three model turns and two tool calls, in a Kitaru flow; its
model is PydanticAI's ``FunctionModel``, so it runs offline. Model requests and tool
bodies are counted in ``$KITARU_TEST_EFFECTS``; ``KITARU_TEST_CRASH_AT=turn3`` kills the
process when the third model request starts (after the second tool call is recorded)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import kitaru
from flows import effect, maybe_crash
from kitaru import flow
from kitaru.adapters.pydantic_ai import KitaruAgent


def tool_results(messages: list[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        for part in getattr(message, "parts", [])
        if part.part_kind == "tool-return"
    ]


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = tool_results(messages)
    effect(f"model:turn{len(done) + 1}")
    maybe_crash(f"turn{len(done) + 1}")
    if not done:
        return ModelResponse(parts=[ToolCallPart("search", {"query": "durable agents"})])
    if len(done) == 1:
        return ModelResponse(parts=[ToolCallPart("summarize", {"notes": done[0]})])
    return ModelResponse(parts=[TextPart(f"answer from: {done[1]}")])


agent = Agent(FunctionModel(scripted_model), name="researcher")


@agent.tool_plain
def search(query: str) -> str:
    effect("tool:search")
    return f"{os.environ.get('SEARCH_FLAVOR', 'plain')} results for {query}"


@agent.tool_plain
def summarize(notes: str) -> str:
    effect("tool:summarize")
    return f"summary of {notes}"


durable = KitaruAgent(agent)


@flow
async def research(question: str) -> str:
    result = await durable.run(question)
    return str(result.output)


@flow
def research_sync(question: str) -> str:
    return str(durable.run_sync(question).output)


@flow(max_llm_calls=2)
async def capped(question: str) -> str:
    try:
        return str((await durable.run(question)).output)
    except kitaru.KitaruBudgetExceededError as exc:
        return f"stopped after {exc.calls} model requests"


def mcp_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = tool_results(messages)
    effect(f"model:mcp{len(done) + 1}")
    if not done:
        return ModelResponse(parts=[ToolCallPart("lookup", {"term": "journal"})])
    return ModelResponse(parts=[TextPart(f"defined: {done[0]}")])


def mcp_agent() -> KitaruAgent:
    from fastmcp.client.transports import PythonStdioTransport
    from pydantic_ai.mcp import MCPToolset

    server = PythonStdioTransport(
        Path(__file__).parent / "mcp_lookup_server.py",
        env={k: v for k, v in os.environ.items() if k == "KITARU_TEST_EFFECTS"},
        python_cmd=sys.executable,
    )
    return KitaruAgent(Agent(FunctionModel(mcp_model), toolsets=[MCPToolset(server)]))


@flow
async def define(term: str) -> str:
    return str((await mcp_agent().run(f"define {term}")).output)
