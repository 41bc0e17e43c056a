"""PydanticAI agents whose model requests and tool calls are Kitaru steps in a flow.

    from kitaru.adapters.pydantic_ai import KitaruAgent

    agent = KitaruAgent(Agent("openai:gpt-4o-mini", name="researcher", tools=[search]))

    @flow
    async def research(question: str) -> str:
        result = await agent.run(question)
        return result.output

In a flow body every model request is a step (``researcher.model_request``), streamed
or not, and every tool call one named after the tool (``researcher.search``; MCP tools
included). A resumed execution answers the ones that completed from the journal, so it
repeats no model request and no tool call; a streamed request that completed is
streamed again from its recorded response. ``run``, ``run_sync``, ``run_stream``,
``run_stream_events``, ``iter`` and ``override`` all work, with a model, tools and
toolsets chosen at run time. Outside a flow the agent is the plain agent.

The durability is a PydanticAI capability, ``KitaruDurability``: ``KitaruAgent`` adds it
to each run, or give it to ``Agent(..., capabilities=[KitaruDurability()])`` yourself.
``pip install "kitaru[pydantic-ai]"``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.agent import WrapperAgent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolFailed
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.models import CompletedStreamedResponse, Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext, Tool
from pydantic_ai.toolsets import (
    AbstractToolset,
    CombinedToolset,
    FunctionToolset,
    ToolsetTool,
)
from pydantic_ai.toolsets.wrapper import WrapperToolset

from kitaru.adapters._prices import knows_price, unpriced_refusal
from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime.agent_steps import (
    ControlFlow,
    ModelUsage,
    OpenStep,
    StepSpec,
    flow_body,
    run_step,
)
from kitaru_core.runtime.context import ExecutionContext
from kitaru_core.runtime.engine import run_coroutine

__all__ = ["KitaruAgent", "KitaruDurability", "hitl_tool"]

MODEL_REQUEST = "model_request"
_TOOL_SETTINGS = {"retries", "timeout", "checkpoint"}


def _step_name(agent: str | None, what: str) -> str:
    return f"{agent}.{what}" if agent else what


# -- model requests ---------------------------------------------------------------------


@functools.cache
def _responses() -> TypeAdapter[ModelResponse]:
    return TypeAdapter(ModelResponse)


def _dump_response(response: ModelResponse) -> bytes:
    # PydanticAI's own JSON form of a message (bytes: stored as they are, read back by
    # it). One response, not a list of messages: a third of the time, on every request.
    return _responses().dump_json(response)


def _load_response(stored: bytes) -> ModelResponse:
    if stored[:1] == b"[":  # recorded by an earlier Kitaru: a list of one message
        response = ModelMessagesTypeAdapter.validate_json(stored)[0]
        assert isinstance(response, ModelResponse)
        return response
    return _responses().validate_json(stored)


def _cost_of(response: ModelResponse) -> float | None:
    name = response.model_name
    if not name or not knows_price(name, response.provider_name, response.provider_url):
        return None  # a model without a known price (a test model, a private one)
    try:
        return float(response.cost().total_price)
    except Exception:  # usage the provider did not report
        return None


def _usage_of(model: Model) -> Callable[[ModelResponse], ModelUsage]:
    def usage(response: ModelResponse) -> ModelUsage:
        return ModelUsage(
            model=response.model_name or model.model_name,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cost_usd=_cost_of(response),
        )

    return usage


class KitaruModel(WrapperModel):
    """The model serving a request, each request (streamed or not) a step in a flow."""

    def __init__(self, wrapped: Model | str, agent_name: str | None) -> None:
        super().__init__(wrapped)  # a model's name is made a model
        self.step_name = _step_name(agent_name, MODEL_REQUEST)
        self._spec: StepSpec[ModelResponse] = StepSpec(
            self.step_name,
            encode=_dump_response,
            decode=_load_response,
            retries=0,  # the model's own client retries; a run's retry is the flow's
            usage=_usage_of(self.wrapped),
            price_refusal=self._price_refusal,
        )

    def _price_refusal(self) -> str | None:
        model = self.wrapped
        if knows_price(model.model_name, model.system, model.base_url):
            return None
        return unpriced_refusal(model.model_name)

    async def request(
        self,
        messages: list[Any],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        ctx = flow_body()
        if ctx is None:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        return await run_step(
            ctx,
            self._spec,
            lambda: self.wrapped.request(messages, model_settings, model_request_parameters),
        )

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[Any],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[Any]:
        ctx = flow_body()
        if ctx is None:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
            return
        call = OpenStep(ctx, self._spec)
        if call.replayed:  # streamed again from the recorded response, part by part
            yield CompletedStreamedResponse(
                call.value, model_request_parameters=model_request_parameters, replay_events=True
            )
            return
        # The caller gets the live stream; once it has read it, the response is recorded.
        with call.streaming():
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
                response = stream.get()
        await call.completed(response)


# -- tool calls ---------------------------------------------------------------------------


def _dump_control_flow(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, CallDeferred):
        return {"metadata": exc.metadata, "kind": exc.kind}
    if isinstance(exc, ApprovalRequired):
        return {"metadata": exc.metadata}
    return {"message": getattr(exc, "message", str(exc))}


def _revive_control_flow(name: str, stored: dict[str, Any]) -> BaseException:
    if name == "CallDeferred":
        return CallDeferred(stored.get("metadata"), kind=stored.get("kind", "external"))
    if name == "ApprovalRequired":
        return ApprovalRequired(stored.get("metadata"))
    return ToolFailed(stored["message"]) if name == "ToolFailed" else ModelRetry(stored["message"])


CONTROL_FLOW: ControlFlow[Any] = ControlFlow(
    types=(ModelRetry, ToolFailed, CallDeferred, ApprovalRequired),
    dump=_dump_control_flow,
    revive=_revive_control_flow,
)
"""PydanticAI's answers to the agent (try again, failed, deferred, needs approval):
recorded and raised again on replay, never retried as failures."""


@dataclass
class KitaruToolset(WrapperToolset[Any]):
    """The run's toolset, each tool call a step named after the tool, in a flow."""

    agent_name: str | None = None
    tool_settings: Mapping[str, Mapping[str, Any]] | None = None

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        execution = flow_body()
        settings = (self.tool_settings or {}).get(name, {})
        if execution is None or not settings.get("checkpoint", True) or _is_hitl(tool):
            # A hitl tool's call is a wait: a step of its own, in the flow body.
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)
        spec: StepSpec[Any] = StepSpec(
            _step_name(self.agent_name, name),
            retries=settings.get("retries"),
            timeout=settings.get("timeout"),
            control_flow=CONTROL_FLOW,
            metadata={"tool_args": tool_args},  # beside the recorded result
        )
        return await run_step(
            execution, spec, lambda: self.wrapped.call_tool(name, tool_args, ctx, tool)
        )

    def visit_and_replace(self, visitor: Any) -> AbstractToolset[Any]:
        return replace(self, wrapped=self.wrapped.visit_and_replace(visitor))


# -- the capability and the agent ------------------------------------------------------


@dataclass
class KitaruDurability(AbstractCapability[Any]):
    """Makes an agent's model requests and tool calls Kitaru steps when it runs in a flow
    body: whichever model serves a request (the agent's, ``run(model=...)``,
    ``override(model=...)``, a fallback) and whichever tools the run has.

    ``name``: the prefix of the steps' names (default: the agent's name).
    ``tool_settings``: per tool, ``retries`` (attempts after the first), ``timeout``
    (seconds per attempt) and ``checkpoint`` (False: the tool runs on every run,
    unrecorded, for a cheap or deliberately fresh tool such as the time)."""

    name: str | None = None
    tool_settings: Mapping[str, Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        for tool, settings in (self.tool_settings or {}).items():
            unknown = set(settings) - _TOOL_SETTINGS
            if unknown:
                raise KitaruUsageError(
                    f"tool_settings[{tool!r}] has unknown setting(s) {sorted(unknown)}; "
                    f"the settings are {sorted(_TOOL_SETTINGS)}"
                )

    def for_agent(self, agent: Any) -> AbstractCapability[Any]:
        if self.name is None and getattr(agent, "name", None):
            return replace(self, name=agent.name)
        return self

    def get_wrapper_model(self, model: Model) -> Model | None:
        if isinstance(model, KitaruModel):
            return None
        return KitaruModel(model, self.name)

    def get_wrapper_toolset(self, toolset: AbstractToolset[Any]) -> AbstractToolset[Any]:
        return KitaruToolset(toolset, agent_name=self.name, tool_settings=self.tool_settings)


class KitaruAgent(WrapperAgent[Any, Any]):
    """A ``pydantic_ai.Agent`` made durable in flows (see the module's docstring).

    ``tool_settings``: see ``KitaruDurability``. ``checkpoints``: ``"calls"`` (each model
    request and tool call a step) or ``"turn"`` (a whole run one step: for runs that
    stream a lot and need no finer grain; a resumed run that completed returns its
    recorded output and messages without running)."""

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        name: str | None = None,
        tool_settings: Mapping[str, Mapping[str, Any]] | None = None,
        checkpoints: Literal["calls", "turn"] = "calls",
    ) -> None:
        if checkpoints not in ("calls", "turn"):
            raise KitaruUsageError(
                f"KitaruAgent(checkpoints={checkpoints!r}): use 'calls' (a step per model "
                "request and tool call) or 'turn' (one step per run)"
            )
        super().__init__(agent)
        self.durability = KitaruDurability(name=name or agent.name, tool_settings=tool_settings)
        self.checkpoints = checkpoints
        self._model: tuple[Any, KitaruModel] | None = None
        """The agent's model (or its name) as last seen, and it made durable."""

    @asynccontextmanager
    async def iter(
        self, user_prompt: Any = None, *, capabilities: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """``Agent.iter``; in a flow, each model request and tool call is a step."""
        if flow_body() is None:  # the plain agent, at the plain agent's cost
            async with self.wrapped.iter(user_prompt, capabilities=capabilities, **kwargs) as run:
                yield run
            return
        direct = self._direct(kwargs)
        if direct is not None:
            with direct:
                async with self.wrapped.iter(
                    user_prompt, capabilities=capabilities, **kwargs
                ) as run:
                    yield run
            return
        added = [*(capabilities or ()), self.durability]
        async with self.wrapped.iter(user_prompt, capabilities=added, **kwargs) as run:
            yield run

    def _direct(self, kwargs: dict[str, Any]) -> Any:
        """The agent's own model and toolsets made durable for this run by an override,
        as DBOSAgent does, when nothing chose others (a capability costs PydanticAI a
        fifth of a millisecond a run); None when the run or an ``override`` chooses its
        model or tools: the capability wraps whatever they chose. Per-run toolsets are
        wrapped and added (and taken out of ``kwargs``)."""
        agent = self.wrapped
        overrides = [
            getattr(agent, attr, None)
            for attr in ("_override_model", "_override_toolsets", "_override_tools")
        ]
        if (
            kwargs.get("model") is not None
            or agent.model is None
            or any(var is None or var.get() is not None for var in overrides)
        ):
            return None
        if self._model is None or self._model[0] is not agent.model:
            self._model = (agent.model, KitaruModel(agent.model, self.durability.name))
        # One wrapper around them all, and none around toolsets with no tools: PydanticAI
        # gathers a run's toolsets in tasks of their own, at every step.
        having = [
            toolset
            for toolset in (*agent.toolsets, *(kwargs.pop("toolsets", None) or ()))
            if not (isinstance(toolset, FunctionToolset) and not toolset.tools)
        ]
        toolsets = [self.durability.get_wrapper_toolset(CombinedToolset(having))] if having else []
        return agent.override(model=self._model[1], toolsets=toolsets, tools=[])

    async def run(self, user_prompt: Any = None, **kwargs: Any) -> Any:
        """``Agent.run``; in a flow, each model request and tool call is a step (with
        ``checkpoints="turn"``, the whole run is one)."""
        ctx = flow_body()
        if ctx is not None and self.checkpoints == "turn":
            return await _run_as_one_step(self, ctx, user_prompt, kwargs)
        return await super().run(user_prompt, **kwargs)

    def run_sync(self, user_prompt: Any = None, **kwargs: Any) -> Any:
        """``Agent.run_sync``; in a sync flow body, the run's event loop gives its
        concurrent tool calls paths of their own (as an async flow's does)."""
        ctx = flow_body()
        if ctx is None:
            return super().run_sync(user_prompt, **kwargs)
        return run_coroutine(ctx.scoped(self.run(user_prompt, **kwargs)))


@dataclass
class RecordedRun:
    """What a run recorded as one step (``checkpoints="turn"``) gives back on replay:
    the parts of ``AgentRunResult`` a flow reads."""

    output: Any
    messages_json: bytes
    new_from: int

    def all_messages(self) -> list[Any]:
        return ModelMessagesTypeAdapter.validate_json(self.messages_json)

    def new_messages(self) -> list[Any]:
        return self.all_messages()[self.new_from :]

    def all_messages_json(self) -> bytes:
        return self.messages_json


async def _run_as_one_step(
    agent: KitaruAgent, ctx: ExecutionContext, user_prompt: Any, kwargs: dict[str, Any]
) -> Any:
    async def whole_run() -> Any:
        return await WrapperAgent.run(agent, user_prompt, **kwargs)

    def encode(result: Any) -> dict[str, Any]:
        return {
            "output": TypeAdapter(type(result.output)).dump_python(result.output, mode="json"),
            "messages": result.all_messages_json().decode(),
            "new_from": len(result.all_messages()) - len(result.new_messages()),
        }

    def decode(stored: dict[str, Any]) -> RecordedRun:
        output = stored["output"]
        output_type = kwargs.get("output_type") or agent.wrapped.output_type
        if isinstance(output_type, type) and not isinstance(output, output_type):
            output = TypeAdapter(output_type).validate_python(output)
        return RecordedRun(output, stored["messages"].encode(), stored["new_from"])

    def usage(result: Any) -> ModelUsage:  # the run's requests, as one LLM call
        used = result.usage  # (a property: calling it is deprecated)
        model = kwargs.get("model") or agent.wrapped.model
        responses = [m for m in result.new_messages() if isinstance(m, ModelResponse)]
        costs = [_cost_of(r) for r in responses]
        known = [c for c in costs if c is not None]
        return ModelUsage(
            model=next(
                (r.model_name for r in reversed(responses) if r.model_name),
                getattr(model, "model_name", None) or str(model),
            ),
            input_tokens=used.input_tokens,
            output_tokens=used.output_tokens,
            # The sum of its requests' prices; unknown when any one's price is.
            cost_usd=sum(known) if known and len(known) == len(costs) else None,
        )

    spec: StepSpec[Any] = StepSpec(
        _step_name(agent.durability.name, "run"), encode=encode, decode=decode, usage=usage
    )
    return await run_step(ctx, spec, whole_run)


# -- tools that ask a person --------------------------------------------------------------

_HITL = "kitaru_hitl"


def _is_hitl(tool: ToolsetTool[Any]) -> bool:
    return bool((tool.tool_def.metadata or {}).get(_HITL))


def hitl_tool(
    *, question: str, schema: Any = str, name: str | None = None
) -> Callable[[Callable[..., Any]], Tool[Any]]:
    """A tool whose call asks a person: in a flow, a ``kitaru.wait`` (the execution waits
    with no process held; the answer, validated against ``schema``, is the tool's
    result). ``question`` is formatted with the call's arguments. Outside a flow the call
    is deferred the PydanticAI way (``CallDeferred``: the run ends with
    ``DeferredToolRequests`` carrying the question).

        @hitl_tool(question="Send {amount} EUR to {to}?", schema=bool)
        def approve_payment(to: str, amount: float) -> None:
            \"\"\"Ask a person to approve a payment.\"\"\"
    """

    def wrap(func: Callable[..., Any]) -> Tool[Any]:
        signature = inspect.signature(func)
        tool_name = name or func.__name__

        @functools.wraps(func)
        async def ask(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(*args, **kwargs).arguments
            asked = question.format(**arguments)
            ctx = flow_body()
            if ctx is None:
                raise CallDeferred({"question": asked}, kind="question")
            from kitaru_core.runtime.wait import ainput

            return await ainput(schema=schema, question=asked, name=ctx.next_name(tool_name))

        ask.__signature__ = signature  # type: ignore[attr-defined]
        return Tool(ask, name=tool_name, takes_ctx=False, metadata={_HITL: True})

    return wrap
