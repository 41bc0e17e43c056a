"""A PydanticAI agent of three model turns and two tool calls, in a Kitaru flow; its
model is PydanticAI's ``FunctionModel``, so it runs offline. Model requests and tool
bodies are counted in ``$KITARU_TEST_EFFECTS``; ``KITARU_TEST_CRASH_AT=turn3`` kills the
process when the third model request starts (after the second tool call is recorded)."""

from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import random
import signal
import sys
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from pydantic_ai import (
    Agent,
    AgentRunResultEvent,
    DeferredToolRequests,
    DeferredToolResults,
    ModelRetry,
    RunContext,
    Tool,
    ToolFailed,
)
from pydantic_ai.capabilities import ProcessEventStream
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.toolsets import FunctionToolset
from pydantic_ai.usage import RequestUsage, UsageLimits

import kitaru
from flows import effect, maybe_crash
from kitaru import flow
from kitaru.adapters.pydantic_ai import KitaruAgent, hitl_tool


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


# -- agents side by side, streaming, and choices made at run time ------------------------
#
# Each scripted agent asks for two tools at once (run concurrently by PydanticAI), then
# answers with their results. Its effects name its steps (``alpha.model_request#1``,
# ``alpha.search``), so a test can tell which ran twice. ``KITARU_TEST_CRASH_AT_EFFECT=N``
# kills the process as the N-th effect is about to happen.


def completed_steps(exec_id: str) -> collections.Counter[str]:
    """The steps an execution completed so far, named as the agents' effects are
    (``alpha.model_request#2`` for its second model request)."""
    from kitaru import KitaruClient

    names = collections.Counter(
        c.name
        for c in KitaruClient().executions.get(exec_id).checkpoints
        if c.status == "completed"
    )
    effects: collections.Counter[str] = collections.Counter()
    for name, count in names.items():
        if name.endswith(".model_request"):
            effects.update(f"{name}#{turn}" for turn in range(1, count + 1))
        else:
            effects[name] += count
    return effects


def step_effect(label: str) -> None:
    limit = os.environ.get("KITARU_TEST_CRASH_AT_EFFECT")
    if limit is None:
        maybe_crash(label)
        effect(label)
        return
    # Counted and written under a lock: model functions run in threads, side by side.
    with open(os.environ["KITARU_TEST_EFFECTS"], "a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        if len(file.read().split()) + 1 == int(limit):
            os.kill(os.getpid(), signal.SIGKILL)
        file.write(f"{label}\n")


def _answer(name: str, messages: list[ModelMessage], tools: tuple[str, ...]) -> ModelResponse:
    done = tool_results(messages)
    step_effect(f"{name}.model_request#{1 if not done else 2}")
    if not done:
        return ModelResponse(parts=[ToolCallPart(t, {"topic": name}) for t in tools])
    return ModelResponse(parts=[TextPart(f"{name}: {' + '.join(sorted(done))}")])


def two_tool_model(
    name: str, tools: tuple[str, ...], model_name: str = "scripted"
) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return _answer(name, messages, tools)

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        response = _answer(name, messages, tools)
        for index, part in enumerate(response.parts):
            if isinstance(part, ToolCallPart):
                yield {index: DeltaToolCall(part.tool_name, part.args_as_json_str())}
            else:
                for word in str(part.content).split(" "):
                    yield word + " "

    return FunctionModel(respond, stream_function=stream, model_name=model_name)


def topic_tool(agent: str, tool: str) -> Tool[Any]:
    async def run(topic: str) -> str:
        await asyncio.sleep(random.uniform(0, 0.02))  # the two calls finish in either order
        step_effect(f"{agent}.{tool}")
        return f"{tool}({topic})"

    return Tool(run, name=tool)


def side_agent(name: str, tools: tuple[str, ...]) -> KitaruAgent:
    return KitaruAgent(
        Agent(two_tool_model(name, tools), name=name, tools=[topic_tool(name, t) for t in tools])
    )


alpha = side_agent("alpha", ("search", "fetch"))
beta = side_agent("beta", ("search", "rank"))  # the same tool name as alpha's


@flow
async def side_by_side(topic: str) -> list[str]:
    a, b = await asyncio.gather(alpha.run(topic), beta.run(topic))
    return [a.output, b.output]


async def count_events(ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
    async for _event in events:
        effect("event")


streaming = KitaruAgent(
    Agent(
        two_tool_model("streamer", ("search", "fetch")),
        name="streamer",
        tools=[topic_tool("streamer", t) for t in ("search", "fetch")],
        capabilities=[ProcessEventStream(count_events)],  # the agent's own handler
    )
)
per_run = side_agent("per_run", ("search", "fetch"))


@flow
async def streamed(topic: str) -> str:
    return str((await streaming.run(topic)).output)


@flow
async def streamed_per_run(topic: str) -> str:
    return str((await per_run.run(topic, event_stream_handler=count_events)).output)


@flow(max_llm_calls=1)
async def streamed_capped(topic: str) -> str:
    try:
        return str((await streaming.run(topic)).output)
    except kitaru.KitaruBudgetExceededError as exc:
        return f"stopped after {exc.calls} model request(s)"


@flow
async def run_stream_flow(topic: str) -> str:
    async with per_run.run_stream(topic) as result:
        chunks = [chunk async for chunk in result.stream_text(delta=True)]
    return "".join(chunks).strip()


@flow
async def run_stream_events_flow(topic: str) -> str:
    output = ""
    async with per_run.run_stream_events(topic) as events:
        async for event in events:
            if isinstance(event, AgentRunResultEvent):
                output = str(event.result.output)
    return output


@flow
async def iter_flow(topic: str, stream_nodes: bool) -> list[str]:
    kinds = []
    async with per_run.iter(topic) as run:
        async for node in run:
            kinds.append(type(node).__name__)
            if stream_nodes and Agent.is_model_request_node(node):
                async with node.stream(run.ctx) as events:
                    async for _event in events:
                        pass
    assert run.result is not None
    return [*kinds, str(run.result.output)]


other_model = two_tool_model("other", ("search", "fetch"), model_name="other-model")


@flow
async def with_run_time_model(topic: str) -> str:
    return str((await per_run.run(topic, model=other_model)).output)


def extra_toolset() -> FunctionToolset[Any]:
    return FunctionToolset([topic_tool("per_run", "lookup")])


@flow
async def with_run_time_toolsets(topic: str) -> str:
    agent = side_agent("toolsets", ("lookup",))
    bare = KitaruAgent(Agent(two_tool_model("toolsets", ("lookup",)), name="toolsets"))
    del agent
    return str((await bare.run(topic, toolsets=[extra_toolset()])).output)


@flow
async def with_override(topic: str) -> str:
    grep_model = two_tool_model("other", ("grep",), model_name="other-model")
    with per_run.override(model=grep_model, tools=[topic_tool("per_run", "grep")]):
        return str((await per_run.run(topic)).output)


# -- control flow, limits, deferred calls, people, per-tool settings, whole turns ---------


def retrying_model(tool: str) -> FunctionModel:
    """Calls ``tool`` with a bad argument, then (told to retry) with a good one."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        retries = [
            part
            for message in messages
            for part in getattr(message, "parts", [])
            if part.part_kind == "retry-prompt"
        ]
        done = tool_results(messages)
        if done:
            return ModelResponse(parts=[TextPart(f"got {done[0]}")])
        value = "good" if retries else "bad"
        return ModelResponse(parts=[ToolCallPart(tool, {"value": value})])

    return FunctionModel(respond)


def checked(value: str) -> str:
    step_effect(f"checked:{value}")
    if value == "bad":
        raise ModelRetry("use a good value")
    return f"checked {value}"


def refused(value: str) -> str:
    step_effect(f"refused:{value}")
    if value == "bad":
        raise ToolFailed("that value is refused")
    return f"refused {value}"


retry_agent = KitaruAgent(Agent(retrying_model("checked"), name="retrier", tools=[checked]))
failed_agent = KitaruAgent(Agent(retrying_model("refused"), name="failer", tools=[refused]))


@flow(retries=2)
async def model_retry_flow() -> str:
    return str((await retry_agent.run("go")).output)


@flow(retries=2)
async def tool_failed_flow() -> str:
    return str((await failed_agent.run("go")).output)


@flow
async def usage_limited() -> str:
    try:
        await per_run.run("t", usage_limits=UsageLimits(request_limit=1))
    except UsageLimitExceeded as exc:
        return f"limited: {exc}"
    return "not limited"


def deferring_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = tool_results(messages)
    if done:
        return ModelResponse(parts=[TextPart(f"deployed: {done[0]}")])
    return ModelResponse(parts=[ToolCallPart("deploy", {"service": "api"}, tool_call_id="d1")])


deferring = Agent(
    FunctionModel(deferring_model), name="deployer", output_type=[str, DeferredToolRequests]
)


@deferring.tool_plain(requires_approval=True)
def deploy(service: str) -> str:
    step_effect(f"deploy:{service}")
    return f"{service} is live"


durable_deployer = KitaruAgent(deferring)


@flow
async def deferred_approval() -> str:
    first = await durable_deployer.run("deploy the api")
    assert isinstance(first.output, DeferredToolRequests)
    approved = await kitaru.ainput(schema=bool, name="approve_deploy", question="Deploy?")
    results = DeferredToolResults(approvals={"d1": approved})
    second = await durable_deployer.run(
        message_history=first.all_messages(), deferred_tool_results=results
    )
    return str(second.output)


@hitl_tool(question="Send {amount} EUR to {to}?", schema=bool)
def approve_payment(to: str, amount: float) -> None:
    """Ask a person to approve a payment."""


def paying_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = tool_results(messages)
    step_effect(f"payer.model_request#{len(done) + 1}")
    if done:
        return ModelResponse(parts=[TextPart(f"approved: {done[0]}")])
    return ModelResponse(parts=[ToolCallPart("approve_payment", {"to": "ada", "amount": 12.5})])


payer = KitaruAgent(
    Agent(
        FunctionModel(paying_model),
        name="payer",
        tools=[approve_payment],
        output_type=[str, DeferredToolRequests],
    )
)


@flow
async def pay() -> str:
    return str((await payer.run("pay ada")).output)


def slow_then_fast(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = tool_results(messages)
    if len(done) == 2:
        return ModelResponse(parts=[TextPart(" | ".join(done))])
    return ModelResponse(parts=[ToolCallPart("flaky", {}), ToolCallPart("now", {})])


_flaky_calls = {"count": 0}


async def flaky() -> str:
    _flaky_calls["count"] += 1
    step_effect("flaky")
    if _flaky_calls["count"] == 1:
        await asyncio.sleep(5)  # the first attempt times out
    return "flaky ok"


def now() -> str:
    step_effect("now")
    return "now"


settings_agent = KitaruAgent(
    Agent(FunctionModel(slow_then_fast), name="tuned", tools=[flaky, now]),
    tool_settings={"flaky": {"retries": 1, "timeout": 0.2}, "now": {"checkpoint": False}},
)


@flow
async def tuned() -> str:
    return str((await settings_agent.run("go")).output)


turn_agent = KitaruAgent(
    Agent(
        two_tool_model("turner", ("search", "fetch")),
        name="turner",
        tools=[topic_tool("turner", t) for t in ("search", "fetch")],
    ),
    checkpoints="turn",
)


@flow
async def whole_turn(topic: str) -> str:
    first = await turn_agent.run(topic)
    maybe_crash("after-turn")
    return f"{first.output} ({len(first.all_messages())} messages)"


@flow
def sync_side(topic: str) -> str:
    return str(per_run.run_sync(topic).output)


def priced_model() -> FunctionModel:
    """Two requests (a tool call, then the answer), each priced as gpt-4o-mini's."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        called = any(isinstance(m, ModelResponse) for m in messages)
        part: Any = TextPart("priced") if called else ToolCallPart("search", {"topic": "t"})
        return ModelResponse(
            parts=[part],
            model_name="gpt-4o-mini",
            provider_name="openai",
            usage=RequestUsage(input_tokens=1000, output_tokens=100),
        )

    return FunctionModel(respond, model_name="gpt-4o-mini")


priced_turn = KitaruAgent(
    Agent(priced_model(), name="priced", tools=[topic_tool("priced", "search")]),
    checkpoints="turn",
)


@flow
async def priced_whole_turn() -> str:
    return str((await priced_turn.run("go")).output)


priced_calls = KitaruAgent(
    Agent(priced_model(), name="priced", tools=[topic_tool("priced", "search")])
)
unpriced = KitaruAgent(
    Agent(FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("free")])), name="free")
)


@flow
async def priced_then_unpriced() -> str:
    """Each request priced on its own: two known ones, then two a price list lacks."""
    first = (await priced_calls.run("go")).output
    second = (await unpriced.run("go")).output
    third = (await unpriced.run("again")).output
    return f"{first} {second} {third}"


@flow(max_cost_usd=0.001)
async def unpriced_under_a_cost_limit() -> str:
    """A known model's requests count against the limit; an unknown one's could not."""
    first = (await priced_calls.run("go")).output
    try:
        return str((await unpriced.run("go")).output)
    except kitaru.KitaruUsageError as exc:
        return f"{first}; refused: {exc}"
