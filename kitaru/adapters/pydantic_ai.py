"""``KitaruAgent``: a PydanticAI agent whose model requests and tool calls are Kitaru
checkpoints when it runs in a flow.

    from kitaru.adapters.pydantic_ai import KitaruAgent

    agent = KitaruAgent(Agent("openai:gpt-4o-mini", tools=[search]))

    @flow
    async def research(question: str) -> str:
        result = await agent.run(question)
        return result.output

In a flow body every model request is a checkpoint (``model_request``) and every tool
call one named after the tool (MCP tools included): a resumed execution answers the
ones that completed from the journal, so it repeats no model request and no tool call.
Outside a flow the agent is the plain agent. ``pip install "kitaru[pydantic-ai]"``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from pydantic_ai.toolsets.wrapper import WrapperToolset

from kitaru_core.artifacts import new_id
from kitaru_core.runtime.checkpoint import Checkpoint
from kitaru_core.runtime.context import current_checkpoint, current_execution
from kitaru_core.runtime.llm import check_budget
from kitaru_core.runtime.primitives import log
from kitaru_core.store.records import LLMCallRecord

MODEL_REQUEST = "model_request"


def _in_flow_body() -> bool:
    """Whether a step called now is a step of a running flow (not inside a checkpoint)."""
    return current_execution.get() is not None and current_checkpoint.get() is None


def _record_call(ctx: Any, response: ModelResponse, model: Model, latency: float) -> None:
    """The request as one of the execution's LLM calls: model, tokens, latency, cost
    (PydanticAI's price for the model, when it knows one)."""
    frame = current_checkpoint.get()
    try:
        cost: float | None = float(response.cost().total_price)
    except Exception:  # a model without a known price (a test model, a private one)
        cost = None
    ctx.store.record_llm_call(
        LLMCallRecord(
            id=new_id(),
            exec_id=ctx.exec_id,
            position=frame.position if frame else None,
            checkpoint=frame.name if frame else None,
            alias=None,
            model=response.model_name or model.model_name,
            prompt_artifact_id=None,
            response_artifact_id=None,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cost_usd=cost,
            latency=latency,
            attempts=1,
            error=None,
            created_at=time.time(),
        ),
        [],
    )


class KitaruModel(WrapperModel):
    """The agent's model, each request a checkpoint when the agent runs in a flow."""

    async def request(
        self,
        messages: list[Any],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        if not _in_flow_body():
            return await self.wrapped.request(messages, model_settings, model_request_parameters)

        ctx = current_execution.get()
        assert ctx is not None
        check_budget(ctx)  # the flow's max_cost_usd and max_llm_calls count these too

        async def request_as_data() -> list[Any]:
            started = time.perf_counter()
            response = await self.wrapped.request(
                messages, model_settings, model_request_parameters
            )
            _record_call(ctx, response, self.wrapped, time.perf_counter() - started)
            # Recorded as PydanticAI's own JSON form of a message, and read back by it.
            return ModelMessagesTypeAdapter.dump_python([response], mode="json")

        recorded = await Checkpoint(request_as_data, name=MODEL_REQUEST)()
        response = ModelMessagesTypeAdapter.validate_python(recorded)[0]
        assert isinstance(response, ModelResponse)
        return response


class KitaruToolset(WrapperToolset[Any]):
    """A toolset whose every call is a checkpoint named after the tool, in a flow."""

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        if not _in_flow_body():
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)

        async def call() -> Any:
            log(tool_args=tool_args)  # the call's arguments, beside its recorded result
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)

        return await Checkpoint(call, name=name)()

    def visit_and_replace(self, visitor: Any) -> AbstractToolset[Any]:
        return replace(self, wrapped=self.wrapped.visit_and_replace(visitor))


class KitaruAgent:
    """Wraps a ``pydantic_ai.Agent``: ``run``, ``run_sync`` and ``iter`` return what the
    agent returns; in a flow body its model requests and tool calls are checkpoints."""

    def __init__(self, agent: Agent[Any, Any]) -> None:
        if not isinstance(agent.model, Model):
            raise TypeError(
                "KitaruAgent needs an agent built with its model (Agent(model, ...)): the "
                "model is wrapped once, so it cannot be chosen per run"
            )
        self.wrapped = agent
        self.model = KitaruModel(agent.model)
        self.toolsets = [KitaruToolset(t) for t in agent.toolsets]

    @property
    def name(self) -> str | None:
        return self.wrapped.name

    @contextmanager
    def _durable(self) -> Iterator[None]:
        with self.wrapped.override(model=self.model, toolsets=self.toolsets, tools=[]):
            yield

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        """``Agent.run``; in a flow, each model request and tool call is a checkpoint."""
        with self._durable():
            return await self.wrapped.run(*args, **kwargs)

    def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        """``Agent.run_sync``; in a flow, each model request and tool call is a checkpoint."""
        with self._durable():
            return self.wrapped.run_sync(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
