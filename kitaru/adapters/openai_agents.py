"""OpenAI Agents SDK runs whose model calls and tool calls are Kitaru steps in a flow.

    from agents import Agent, function_tool
    from kitaru.adapters.openai_agents import KitaruRunner

    agent = Agent(name="researcher", instructions="...", tools=[search])

    @flow
    async def research(question: str) -> str:
        result = await KitaruRunner.run(agent, question)
        return result.final_output

In a flow body every model call of every agent the run reaches (its handoffs included)
is a step (``researcher.model_request``), streamed or not, and every function tool call
one named after the tool (``researcher.search``), an MCP server's tools included; an
agent used as a tool (``agent.as_tool()``) is one step, its whole run; an agent reached
by a handoff, given as an agent or by ``handoff(...)``, is durable too. A resumed execution answers the calls
that completed from the journal; a streamed call that completed replays its recorded
events to the caller. ``KitaruRunner.run``, ``run_sync`` and ``run_streamed`` take
``Runner``'s arguments; outside a flow they are ``Runner``'s. No server is needed.
Each model call's cost is recorded from genai-prices' price list (the one PydanticAI
uses) when it prices the model's name; under a flow's ``max_cost_usd``, a call to a
model it does not price is refused before it is sent.
``pip install "kitaru[openai-agents]"``.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, FunctionTool, Handoff, RunConfig, Runner
from agents.items import ModelResponse, TResponseOutputItem, TResponseStreamEvent
from agents.models.interface import Model, ModelProvider
from agents.models.multi_provider import MultiProvider
from agents.usage import Usage
from pydantic import TypeAdapter
from typing_extensions import TypedDict  # (pydantic needs this one before Python 3.12)

from kitaru.adapters._prices import cost_usd, knows_price, unpriced_refusal
from kitaru_core.runtime.agent_steps import ModelUsage, OpenStep, StepSpec, flow_body, run_step
from kitaru_core.runtime.engine import run_coroutine

__all__ = ["KitaruRunner"]


class _Recorded(TypedDict):
    """A model call's response as its step records it."""

    output: list[TResponseOutputItem]
    usage: list[int]  # requests, input, output and total tokens
    response_id: str | None


_RECORDED: TypeAdapter[_Recorded] = TypeAdapter(_Recorded)
_EVENTS: TypeAdapter[list[TResponseStreamEvent]] = TypeAdapter(list[TResponseStreamEvent])


# -- model calls -------------------------------------------------------------------------
# Stored as JSON bytes made in one pass by pydantic (a dict would be encoded again and
# checked by a round trip); steps recorded as a dict by an earlier Kitaru still load.


def _dump_response(response: ModelResponse) -> bytes:
    usage = response.usage
    return _RECORDED.dump_json(
        {
            "output": response.output,
            "usage": [usage.requests, usage.input_tokens, usage.output_tokens, usage.total_tokens],
            "response_id": response.response_id,
        }
    )


def _load_response(stored: bytes | dict[str, Any]) -> ModelResponse:
    recorded = (
        _RECORDED.validate_python(stored)
        if isinstance(stored, dict)
        else _RECORDED.validate_json(stored)
    )
    requests, input_tokens, output_tokens, total_tokens = recorded["usage"]
    return ModelResponse(
        output=recorded["output"],
        usage=Usage(
            requests=requests,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total_tokens,
        ),
        response_id=recorded["response_id"],
    )


def _load_events(stored: bytes | list[Any]) -> list[Any]:
    if isinstance(stored, list):
        return _EVENTS.validate_python(stored)
    return _EVENTS.validate_json(stored)


def _priced(model: str, input_tokens: int | None, output_tokens: int | None) -> ModelUsage:
    return ModelUsage(
        model, input_tokens, output_tokens, cost_usd(model, input_tokens, output_tokens)
    )


def _model_usage(model_name: str) -> Any:
    def usage(response: ModelResponse) -> ModelUsage:
        return _priced(model_name, response.usage.input_tokens, response.usage.output_tokens)

    return usage


def _stream_usage(model_name: str) -> Any:
    def usage(events: list[Any]) -> ModelUsage:
        final = next((e for e in reversed(events) if e.type == "response.completed"), None)
        used = getattr(getattr(final, "response", None), "usage", None)
        return _priced(
            model_name, getattr(used, "input_tokens", None), getattr(used, "output_tokens", None)
        )

    return usage


class KitaruModel(Model):
    """An agent's model, each call (streamed or not) a step when it runs in a flow."""

    def __init__(self, wrapped: Model, agent_name: str | None) -> None:
        self.wrapped = wrapped
        self.step_name = f"{agent_name}.model_request" if agent_name else "model_request"
        self.model_name = str(getattr(wrapped, "model", None) or type(wrapped).__name__)
        self._call: StepSpec[ModelResponse] = StepSpec(
            self.step_name,
            encode=_dump_response,
            decode=_load_response,
            retries=0,  # the SDK retries the call itself; a run's retry is the flow's
            usage=_model_usage(self.model_name),
            price_refusal=self._price_refusal,
        )
        self._stream: StepSpec[list[Any]] = StepSpec(
            self.step_name,
            encode=_EVENTS.dump_json,
            decode=_load_events,
            retries=0,
            usage=_stream_usage(self.model_name),
            price_refusal=self._price_refusal,
        )

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        ctx = flow_body()
        if ctx is None:
            return await self.wrapped.get_response(*args, **kwargs)
        return await run_step(ctx, self._call, lambda: self.wrapped.get_response(*args, **kwargs))

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        ctx = flow_body()
        if ctx is None:
            async for event in self.wrapped.stream_response(*args, **kwargs):
                yield event
            return
        call = OpenStep(ctx, self._stream)
        if call.replayed:  # the recorded events, as they arrived
            for event in call.value:
                yield event
            return
        # Each event goes to the caller as it arrives; the whole stream is recorded after.
        events: list[Any] = []
        with call.streaming():
            async for event in self.wrapped.stream_response(*args, **kwargs):
                events.append(event)
                yield event
        await call.completed(events)

    def _price_refusal(self) -> str | None:
        return None if knows_price(self.model_name) else unpriced_refusal(self.model_name)

    def get_retry_advice(self, request: Any) -> Any:
        return self.wrapped.get_retry_advice(request)

    async def close(self) -> None:
        await self.wrapped.close()


# -- tool calls and agents --------------------------------------------------------------


def _durable_tool(tool: Any, agent_name: str) -> Any:
    if not isinstance(tool, FunctionTool):
        return tool  # hosted tools run at the model provider: the model call records them
    invoke = tool.on_invoke_tool
    name = f"{agent_name}.{tool.name}"

    async def on_invoke_tool(context: Any, arguments: str) -> Any:
        ctx = flow_body()
        if ctx is None:
            return await invoke(context, arguments)
        spec: StepSpec[Any] = StepSpec(name, metadata={"tool_args": arguments})
        return await run_step(ctx, spec, lambda: invoke(context, arguments))

    return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)


def _resolve(model: str | Model | None, provider: ModelProvider) -> Model:
    return model if isinstance(model, Model) else provider.get_model(model)


def _durable_agent(
    agent: Agent[Any], provider: ModelProvider, made: dict[int, Agent[Any]]
) -> Agent[Any]:
    """A copy of ``agent`` (and of every agent it hands off to) whose model and function
    tools are steps in a flow."""
    if id(agent) in made:
        return made[id(agent)]
    copy = agent.clone()
    made[id(agent)] = copy
    copy.model = KitaruModel(_resolve(agent.model, provider), agent.name)
    copy.tools = [_durable_tool(tool, agent.name) for tool in agent.tools]
    copy.handoffs = [
        _durable_handoff(handoff, provider, made)
        if isinstance(handoff, Handoff)
        else _durable_agent(handoff, provider, made)
        for handoff in agent.handoffs
    ]
    if agent.mcp_servers:
        # The servers' tools are listed at each turn of the run: wrap them as they come.
        list_tools = copy.get_mcp_tools

        async def get_mcp_tools(run_context: Any) -> list[Any]:
            return [_durable_tool(tool, agent.name) for tool in await list_tools(run_context)]

        copy.get_mcp_tools = get_mcp_tools  # type: ignore[method-assign]
    return copy


def _durable_handoff(
    handoff: Handoff[Any, Any], provider: ModelProvider, made: dict[int, Agent[Any]]
) -> Handoff[Any, Any]:
    """A ``handoff(...)`` whose agent, once its callback has given it, runs durable too.
    The callback is the run's own code: a resumed run calls it again, as it runs
    everything between steps again."""
    invoke = handoff.on_invoke_handoff

    async def on_invoke_handoff(context: Any, input_json: str) -> Any:
        return _durable_agent(await invoke(context, input_json), provider, made)

    return dataclasses.replace(handoff, on_invoke_handoff=on_invoke_handoff)


_made: dict[int, tuple[weakref.ref[Agent[Any]], Agent[Any]]] = {}
"""Durable copies already made, by the id of the agent they copy (while it lives): a
flow that runs one agent many times copies it once."""


def _prepared(agent: Agent[Any], kwargs: dict[str, Any]) -> Agent[Any]:
    config: RunConfig | None = kwargs.get("run_config")
    if config is not None:
        if config.model is not None and not isinstance(config.model, KitaruModel):
            # One model for every agent of the run: its calls are steps too.
            model = KitaruModel(_resolve(config.model, config.model_provider), None)
            kwargs["run_config"] = dataclasses.replace(config, model=model)
        return _durable_agent(agent, config.model_provider, {})
    made = _made.get(id(agent))
    if made is not None and made[0]() is agent:
        return made[1]
    copy = _durable_agent(agent, MultiProvider(), {})
    key = id(agent)
    _made[key] = (weakref.ref(agent, lambda _ref: _made.pop(key, None)), copy)
    return copy


class KitaruRunner:
    """``agents.Runner``, durable in a flow body (see the module's docstring)."""

    @staticmethod
    async def run(agent: Agent[Any], input: Any, **kwargs: Any) -> Any:
        if flow_body() is None:
            return await Runner.run(agent, input, **kwargs)
        return await Runner.run(_prepared(agent, kwargs), input, **kwargs)

    @staticmethod
    def run_sync(agent: Agent[Any], input: Any, **kwargs: Any) -> Any:
        ctx = flow_body()
        if ctx is None:
            return Runner.run_sync(agent, input, **kwargs)
        return run_coroutine(ctx.scoped(KitaruRunner.run(agent, input, **kwargs)))

    @staticmethod
    def run_streamed(agent: Agent[Any], input: Any, **kwargs: Any) -> Any:
        if flow_body() is None:
            return Runner.run_streamed(agent, input, **kwargs)
        return Runner.run_streamed(_prepared(agent, kwargs), input, **kwargs)
