"""``kitaru.llm()``: one LLM call through the stack's gateway, recorded and durable.

In a flow body the call is a checkpoint of its own (``llm_1``, ``llm_2``, or ``name``),
so a resumed execution never pays for it twice; inside a checkpoint it runs inline and
is recorded against that checkpoint. Every call is recorded: alias, resolved model,
prompt and response (as artifacts), latency, tokens, cost, error. The provider key comes
from the stack's secret provider and is never written anywhere.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kitaru_core.artifacts import new_id
from kitaru_core.components.llm_gateway import LLMRequest, LLMResponse
from kitaru_core.errors import KitaruError
from kitaru_core.events import LLMCallEnded
from kitaru_core.loaded_plugins import get_plugins
from kitaru_core.model_aliases import choose
from kitaru_core.runtime.context import ExecutionContext, current_checkpoint, current_execution
from kitaru_core.runtime.step import Step
from kitaru_core.runtime.tracing import set_attributes, span
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import get_store
from kitaru_core.store.records import ArtifactRecord, LLMCallRecord

if TYPE_CHECKING:
    from kitaru_core.stack import Stack

MOCK_ENV = "KITARU_LLM_MOCK_RESPONSE"
_SECRET_PARAMS = ("api_key", "token", "secret", "password", "credentials")


def approx_tokens(text: str) -> int:
    """About four characters a token: what a mocked call reports."""
    return max(1, (len(text) + 3) // 4)


@dataclass
class _Outcome:
    text: str
    call: LLMCallRecord
    artifacts: list[ArtifactRecord]
    response_artifact: ArtifactRecord | None
    error: BaseException | None = None


def llm(
    prompt: str | list[dict[str, str]],
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> str:
    """Ask a model; returns its text. ``model`` is an alias of the active stack's
    gateway (``fast``) or a provider model (``openai/gpt-4o-mini``)."""
    ctx = current_execution.get()
    frame = current_checkpoint.get()
    messages = _messages(prompt, system)
    if ctx is None or frame is not None:
        stack = ctx.stack if ctx is not None else get_stack()
        exec_id = ctx.exec_id if ctx is not None else None
        outcome = _call(
            stack,
            messages,
            model,
            temperature,
            max_tokens,
            kwargs,
            exec_id=exec_id,
            position=frame.position if frame else None,
            checkpoint=frame.name if frame else None,
        )
        (ctx.store if ctx else get_store()).record_llm_call(outcome.call, outcome.artifacts)
        _notify(ctx, outcome.call)
        if outcome.error is not None:
            raise outcome.error
        return outcome.text

    # In the flow body: a journaled step of its own.
    return ctx.step(
        name or ctx.next_name("llm"),
        "llm",
        lambda step: _journaled_call(step, messages, model, temperature, max_tokens, kwargs),
        load=str,
    )


def allm(
    prompt: str | list[dict[str, str]],
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> Awaitable[str]:
    """``llm`` for async code: ``await kitaru.allm(...)``. In an async flow body the
    call's journal position is taken when it is called (so ``asyncio.gather`` of calls
    lines up on resume); the gateway call runs in a thread."""
    import asyncio

    ctx = current_execution.get()
    if ctx is None or current_checkpoint.get() is not None:
        call = functools.partial(
            llm,
            prompt,
            model=model,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            name=name,
            **kwargs,
        )
        return asyncio.to_thread(call)
    messages = _messages(prompt, system)
    return ctx.astep(
        name or ctx.next_name("llm"),
        "llm",
        lambda step: _journaled_call(step, messages, model, temperature, max_tokens, kwargs),
        load=str,
    )


def _journaled_call(
    step: Step,
    messages: list[dict[str, str]],
    model: str | None,
    temperature: float | None,
    max_tokens: int | None,
    kwargs: dict[str, Any],
) -> str:
    ctx = step.ctx
    attributes = {"kitaru.position": step.position, "kitaru.kind": "llm"}
    with span(f"kitaru.checkpoint {step.name}", attributes):
        outcome = _call(
            ctx.stack,
            messages,
            model,
            temperature,
            max_tokens,
            kwargs,
            exec_id=ctx.exec_id,
            position=step.position,
            checkpoint=step.name,
        )
        call = outcome.call
        if outcome.error is not None:
            entry = step.failed_entry(outcome.error, attempts=call.attempts)
        else:
            assert outcome.response_artifact is not None
            entry = step.entry(outcome.response_artifact.id, attempts=call.attempts)
        step.record(entry, outcome.artifacts, llm_calls=[call])
    _notify(ctx, call)
    step.ended(entry)
    if outcome.error is not None:
        raise outcome.error
    return outcome.text


def _messages(prompt: str | list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    if isinstance(prompt, str):
        return [*messages, {"role": "user", "content": prompt}]
    return [*messages, *prompt]


def _call(
    stack: Stack,
    messages: list[dict[str, str]],
    model: str | None,
    temperature: float | None,
    max_tokens: int | None,
    kwargs: dict[str, Any],
    *,
    exec_id: str | None,
    position: int | None,
    checkpoint: str | None,
) -> _Outcome:
    mock = os.environ.get(MOCK_ENV)
    alias, provider_model, params = choose(stack, model, strict=mock is None)
    artifacts = stack.artifacts
    prompt_artifact = artifacts.write(
        messages,
        exec_id=exec_id,
        name=f"{checkpoint or 'llm'}.prompt",
        role="llm",
        position=position,
        artifact_type="prompt",
    )
    secrets: list[str] = []
    started = time.perf_counter()
    response: LLMResponse | None = None
    error: BaseException | None = None
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": provider_model,
        "gen_ai.provider.name": provider_model.split("/", 1)[0],
        "gen_ai.request.temperature": temperature,
        "gen_ai.request.max_tokens": max_tokens,
        "kitaru.llm.alias": alias,
        "kitaru.exec_id": exec_id,
    }
    with span(f"chat {provider_model}", attributes, client=True) as current:
        try:
            if mock is not None:
                response = LLMResponse(
                    text=mock,
                    model=provider_model,
                    input_tokens=sum(approx_tokens(m["content"]) for m in messages),
                    output_tokens=approx_tokens(mock),
                    cost_usd=0.0,
                )
            else:
                resolved = stack.resolve({**params, **kwargs}, "llm_gateway", f"models.{alias}")
                secrets = [
                    str(resolved[k]) for k in resolved if k in _SECRET_PARAMS and resolved[k]
                ]
                response = stack.llm_gateway.complete(
                    LLMRequest(
                        model=provider_model,
                        messages=messages,
                        temperature=temperature,
                        max_tokens=max_tokens,
                        params=resolved,
                    )
                )
        except KitaruError as exc:
            error = _scrubbed(exc, secrets)
        latency = time.perf_counter() - started
        if response is not None:
            set_attributes(
                current,
                **{
                    "gen_ai.response.model": response.model,
                    "gen_ai.usage.input_tokens": response.input_tokens,
                    "gen_ai.usage.output_tokens": response.output_tokens,
                    "kitaru.llm.cost_usd": response.cost_usd,
                    "kitaru.llm.attempts": response.attempts,
                },
            )
        elif error is not None and current is not None:
            from opentelemetry import trace

            current.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
    response_artifact = None
    if response is not None:
        response_artifact = artifacts.write(
            response.text,
            exec_id=exec_id,
            name=f"{checkpoint or 'llm'}.response",
            role="llm",
            position=position,
            artifact_type="response",
        )
    call = LLMCallRecord(
        id=new_id(),
        exec_id=exec_id,
        position=position,
        checkpoint=checkpoint,
        alias=alias,
        model=response.model if response else provider_model,
        prompt_artifact_id=prompt_artifact.id,
        response_artifact_id=response_artifact.id if response_artifact else None,
        input_tokens=response.input_tokens if response else None,
        output_tokens=response.output_tokens if response else None,
        cost_usd=response.cost_usd if response else None,
        latency=latency,
        attempts=response.attempts if response else 1,
        error=str(error) if error else None,
        created_at=time.time(),
    )
    records = [prompt_artifact, *([response_artifact] if response_artifact else [])]
    return _Outcome(response.text if response else "", call, records, response_artifact, error)


def _scrubbed(exc: KitaruError, secrets: list[str]) -> KitaruError:
    """The error with every secret value blanked out of its message."""
    message = str(exc)
    for secret in secrets:
        if len(secret) >= 4:
            message = message.replace(secret, "********")
    if message == str(exc):
        return exc
    return type(exc)(message)


def _notify(ctx: ExecutionContext | None, call: LLMCallRecord) -> None:
    """Tell plugins about the call: the run's observers in a run, else the process's."""
    observers = ctx.observers if ctx is not None else get_plugins().observers
    # The event carries the record's public fields (no artifact ids: plain data).
    observers.llm_call_ended(
        LLMCallEnded(**{name: getattr(call, name) for name in LLMCallEnded._fields})
    )
