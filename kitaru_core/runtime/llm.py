"""``kitaru.llm()``: one LLM call through the stack's gateway, recorded and durable.

In a flow body the call is a checkpoint of its own (``llm_1``, ``llm_2``, or ``name``),
so a resumed execution never pays for it twice; inside a checkpoint it runs inline and
is recorded against that checkpoint. Every call is recorded: alias, resolved model,
prompt and response (as artifacts), latency, tokens, cost, error. The provider key comes
from the stack's secret provider and is never written anywhere.

A call takes a prompt or a chat history (``messages``); ``response_format=Model``
returns a validated instance of a pydantic model (a refusal or JSON that does not fit is
a ``KitaruExecutionError`` carrying the raw text, and the step is not recorded as
completed); ``stream=True`` returns the text in chunks as they come and records the
whole text when the stream ends (a run killed mid-stream calls the model again for that
call only; a resumed run gets the recorded text). Before each call the flow's budget
(``max_cost_usd``, ``max_llm_calls``) is checked against what the execution has spent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kitaru_core.artifacts import new_row_id
from kitaru_core.components.llm_gateway import LLMRequest, LLMResponse
from kitaru_core.errors import (
    KitaruBudgetExceededError,
    KitaruError,
    KitaruExecutionError,
    KitaruUsageError,
)
from kitaru_core.events import LLMCallEnded
from kitaru_core.loaded_plugins import get_plugins
from kitaru_core.model_aliases import choose
from kitaru_core.runtime.context import (
    CheckpointFrame,
    ExecutionContext,
    current_checkpoint,
    current_execution,
)
from kitaru_core.runtime.logs import log_event
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
class LLMCall:
    """What one call asks for (the same whichever way it runs)."""

    messages: list[dict[str, Any]]
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    response_format: Any = None
    stream: bool = False

    def result(self, text: str) -> Any:
        """What the flow gets for the answer ``text``: the text, or the model instance."""
        if self.response_format is None:
            return text
        return self.response_format.model_validate_json(text)


@dataclass
class _Outcome:
    text: str
    call: LLMCallRecord
    artifacts: list[ArtifactRecord]
    response_artifact: ArtifactRecord | None
    error: BaseException | None = None
    value: Any = None


def llm(
    prompt: str | list[dict[str, Any]] | None = None,
    *,
    messages: list[dict[str, Any]] | None = None,
    model: str | None = None,
    system: str | None = None,
    response_format: Any = None,
    stream: bool = False,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> Any:
    """Ask a model. Returns its text; an instance of ``response_format`` (a pydantic
    model) when given; an iterator of text chunks with ``stream=True``. ``model`` is an
    alias of the active stack's gateway (``fast``) or a provider model
    (``openai/gpt-4o-mini``); ``messages`` is an OpenAI-style chat history."""
    if stream and response_format is not None:
        raise KitaruUsageError("kitaru.llm(): stream=True and response_format cannot be combined")
    call = LLMCall(
        _chat(prompt, messages, system),
        model,
        temperature,
        max_tokens,
        kwargs,
        response_format,
        stream,
    )
    ctx = current_execution.get()
    frame = current_checkpoint.get()
    if ctx is None or frame is not None:  # inline, recorded against the checkpoint
        chunks = _inline(ctx, frame, call)
        return chunks if stream else _result_of(chunks)
    step_name = name or ctx.next_name("llm")
    if stream:
        return _journaled_stream(ctx, step_name, call)
    return ctx.step(step_name, "llm", lambda step: _journaled_call(step, call), load=call.result)


def allm(
    prompt: str | list[dict[str, Any]] | None = None,
    *,
    messages: list[dict[str, Any]] | None = None,
    model: str | None = None,
    system: str | None = None,
    response_format: Any = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> Awaitable[Any]:
    """``llm`` for async code: ``await kitaru.allm(...)``. In an async flow body the
    call's journal position is taken when it is called (so ``asyncio.gather`` of calls
    lines up on resume); the gateway call runs in a thread."""
    import asyncio

    call = LLMCall(
        _chat(prompt, messages, system), model, temperature, max_tokens, kwargs, response_format
    )
    ctx = current_execution.get()
    frame = current_checkpoint.get()
    if ctx is None or frame is not None:
        return asyncio.to_thread(lambda: _result_of(_inline(ctx, frame, call)))
    return ctx.astep(
        name or ctx.next_name("llm"),
        "llm",
        lambda step: _journaled_call(step, call),
        load=call.result,
    )


def _chat(
    prompt: str | list[dict[str, Any]] | None,
    messages: list[dict[str, Any]] | None,
    system: str | None,
) -> list[dict[str, Any]]:
    if isinstance(prompt, list):  # a history passed as the prompt (the first API)
        history: list[dict[str, Any]] = prompt
        prompt, messages = None, [*(messages or []), *history]
    if prompt is None and not messages:
        raise KitaruUsageError(
            "kitaru.llm() needs a prompt or messages=[{'role': 'user', 'content': ...}]"
        )
    for message in messages or []:
        if not isinstance(message, dict) or "role" not in message:
            raise KitaruUsageError(
                f"kitaru.llm(): each message is a dict with a 'role' and 'content', not {message!r}"
            )
    chat = [{"role": "system", "content": system}] if system else []
    chat += list(messages or [])
    if prompt is not None:
        chat.append({"role": "user", "content": prompt})
    return chat


# -- the ways a call runs ----------------------------------------------------------------
#
# Each way is a generator of the answer's chunks (none unless the call streams) that
# returns the flow's value: a streamed call hands it to the caller, any other is run
# to its end here (``_result_of``).


def _result_of(chunks: Generator[str, None, Any]) -> Any:
    """Run a call that does not stream to its end; its value."""
    while True:
        try:
            next(chunks)
        except StopIteration as done:
            return done.value


def _inline(
    ctx: ExecutionContext | None, frame: CheckpointFrame | None, call: LLMCall
) -> Generator[str, None, Any]:
    """Outside a flow, or inside a checkpoint: recorded as a call, against the checkpoint."""
    check_budget(ctx)
    outcome = yield from _exchange(
        ctx.stack if ctx is not None else get_stack(),
        call,
        exec_id=ctx.exec_id if ctx is not None else None,
        position=frame.position if frame else None,
        checkpoint=frame.name if frame else None,
        cost_limit=_cost_limit(ctx),
    )
    (ctx.store if ctx else get_store()).record_llm_call(outcome.call, outcome.artifacts)
    _notify(ctx, outcome.call)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _journaled(step: Step, call: LLMCall) -> Generator[str, None, Any]:
    """In a flow body: a step of its own, completed with the response, or failed (an
    error, a refusal, an answer that does not fit the format) so a resumed run asks
    again."""
    ctx = step.ctx
    check_budget(ctx)
    attributes = {"kitaru.position": step.position, "kitaru.kind": "llm"}
    with span(f"kitaru.checkpoint {step.name}", attributes):
        outcome = yield from _exchange(
            ctx.stack,
            call,
            exec_id=ctx.exec_id,
            position=step.position,
            checkpoint=step.name,
            cost_limit=_cost_limit(ctx),
        )
        if outcome.error is not None:
            entry = step.failed_entry(outcome.error, attempts=outcome.call.attempts)
        else:
            assert outcome.response_artifact is not None
            entry = step.entry(outcome.response_artifact.id, attempts=outcome.call.attempts)
        step.record(entry, outcome.artifacts, llm_calls=[outcome.call])
    _notify(ctx, outcome.call)
    step.ended(entry)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _journaled_call(step: Step, call: LLMCall) -> Any:
    return _result_of(_journaled(step, call))


def _journaled_stream(ctx: ExecutionContext, name: str, call: LLMCall) -> Iterator[str]:
    step = ctx.open_step(name, "llm")  # the position is taken at the call
    recorded = step.recorded_output()
    if recorded is not None:
        return iter([ctx.artifacts.read(recorded)])
    ctx.check_cancelled()
    return _journaled(step, call)


def _cost_limit(ctx: ExecutionContext | None) -> float | None:
    budget = ctx.budget if ctx is not None else None
    return budget.get("max_cost_usd") if budget else None


def _refuse_unpriced(pending: _Pending, cost_limit: float) -> None:
    """A call whose cost nobody knows would count as free under ``max_cost_usd``."""
    request = pending.request
    if request is None or pending.stack.llm_gateway.knows_price(request):
        return
    raise KitaruUsageError(
        f"model {request.model!r} (alias {pending.alias!r}) has no known price, so the "
        f"flow's max_cost_usd={cost_limit} could not stop it: set input_cost_per_token "
        f"and output_cost_per_token on the alias (the stack file's models.{pending.alias}: "
        "{model: ..., input_cost_per_token: 0.0000002, output_cost_per_token: 0.0000008}), "
        "or drop max_cost_usd from the flow"
    )


def check_budget(ctx: ExecutionContext | None) -> None:
    """Refuse the call if the execution has spent its budget (checked before each)."""
    budget = ctx.budget if ctx is not None else None
    if not budget or ctx is None:
        return
    calls, spent = ctx.store.llm_spend(ctx.exec_id)
    max_cost, max_calls = budget.get("max_cost_usd"), budget.get("max_llm_calls")
    reason = None
    if max_calls is not None and calls >= max_calls:
        reason = f"it has made {calls} LLM call(s), its limit (max_llm_calls={max_calls})"
    elif max_cost is not None and spent >= max_cost:
        reason = f"it has spent ${spent:.6f}, its limit (max_cost_usd={max_cost})"
    if reason is None:
        return
    message = (
        f"execution {ctx.exec_id} of flow {ctx.flow_name!r} is over its budget: {reason}; "
        "raise the flow's limit or end the flow here"
    )
    ctx.store.merge_execution_metadata(ctx.exec_id, {"budget_exceeded": message})
    log_event(ctx.exec_id, message)
    raise KitaruBudgetExceededError(message, exec_id=ctx.exec_id, spent_usd=spent, calls=calls)


# -- one call through the gateway ----------------------------------------------------------


@dataclass
class _Pending:
    """A call about to be sent: its resolved model, request, and prompt artifact."""

    stack: Stack
    call: LLMCall
    alias: str | None
    request: LLMRequest | None
    """None when the call is mocked (``KITARU_LLM_MOCK_RESPONSE``)."""
    mock: str | None
    secrets: list[str]
    prompt_artifact: ArtifactRecord
    exec_id: str | None
    position: int | None
    checkpoint: str | None
    attributes: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)


def _prepare(
    stack: Stack,
    call: LLMCall,
    *,
    exec_id: str | None,
    position: int | None,
    checkpoint: str | None,
) -> _Pending:
    mock = os.environ.get(MOCK_ENV)
    alias, provider_model, params = choose(stack, call.model, strict=mock is None)
    prompt_artifact = stack.artifacts.write(
        call.messages,
        exec_id=exec_id,
        name=f"{checkpoint or 'llm'}.prompt",
        role="llm",
        position=position,
        artifact_type="prompt",
    )
    request = None
    secrets: list[str] = []
    if mock is None:
        resolved = stack.resolve({**params, **call.params}, "llm_gateway", f"models.{alias}")
        secrets = [str(resolved[k]) for k in resolved if k in _SECRET_PARAMS and resolved[k]]
        request = LLMRequest(
            model=provider_model,
            messages=call.messages,
            temperature=call.temperature,
            max_tokens=call.max_tokens,
            params=resolved,
            response_format=call.response_format,
        )
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": provider_model,
        "gen_ai.provider.name": provider_model.split("/", 1)[0],
        "gen_ai.request.temperature": call.temperature,
        "gen_ai.request.max_tokens": call.max_tokens,
        "kitaru.llm.alias": alias,
        "kitaru.exec_id": exec_id,
    }
    return _Pending(
        stack,
        call,
        alias,
        request,
        mock,
        secrets,
        prompt_artifact,
        exec_id,
        position,
        checkpoint,
        attributes,
    )


def _mocked(pending: _Pending) -> LLMResponse:
    text = pending.mock or ""
    return LLMResponse(
        text=text,
        model=pending.attributes["gen_ai.request.model"],
        input_tokens=sum(approx_tokens(str(m.get("content", ""))) for m in pending.call.messages),
        output_tokens=approx_tokens(text),
        cost_usd=0.0,
    )


def _exchange(
    stack: Stack,
    call: LLMCall,
    *,
    exec_id: str | None,
    position: int | None,
    checkpoint: str | None,
    cost_limit: float | None = None,
) -> Generator[str, None, _Outcome]:
    """Send the call through the gateway (or the mock); yield the answer's chunks if it
    streams; return its outcome. Under a ``cost_limit`` an unpriced call is refused
    before it is sent."""
    pending = _prepare(stack, call, exec_id=exec_id, position=position, checkpoint=checkpoint)
    if cost_limit is not None:
        _refuse_unpriced(pending, cost_limit)
    response: LLMResponse | None = None
    error: BaseException | None = None
    with span(
        f"chat {pending.attributes['gen_ai.request.model']}", pending.attributes, client=True
    ) as current:
        try:
            if pending.request is None:
                response = _mocked(pending)
                if call.stream:
                    for i, word in enumerate(response.text.split(" ")):
                        yield word if i == 0 else " " + word
            elif call.stream:
                for item in stack.llm_gateway.stream(pending.request):
                    if isinstance(item, LLMResponse):
                        response = item
                    else:
                        yield item
            else:
                response = stack.llm_gateway.complete(pending.request)
        except KitaruError as exc:
            error = _scrubbed(exc, pending.secrets)
        _annotate(current, response, error)
    return _finish(pending, response, error)


def _annotate(current: Any, response: LLMResponse | None, error: BaseException | None) -> None:
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


def _finish(
    pending: _Pending, response: LLMResponse | None, error: BaseException | None
) -> _Outcome:
    latency = time.perf_counter() - pending.started
    artifacts = pending.stack.artifacts
    value: Any = None
    if response is not None and error is None:
        error = _unusable(pending, response)
        if error is None:
            value = pending.call.result(response.text)
    response_artifact = None
    if response is not None:
        response_artifact = artifacts.write(
            response.text if not response.refusal else response.refusal,
            exec_id=pending.exec_id,
            name=f"{pending.checkpoint or 'llm'}.response",
            role="llm",
            position=pending.position,
            artifact_type="response",
        )
    call = LLMCallRecord(
        id=new_row_id(),
        exec_id=pending.exec_id,
        position=pending.position,
        checkpoint=pending.checkpoint,
        alias=pending.alias,
        model=response.model if response else pending.attributes["gen_ai.request.model"],
        prompt_artifact_id=pending.prompt_artifact.id,
        response_artifact_id=response_artifact.id if response_artifact else None,
        input_tokens=response.input_tokens if response else None,
        output_tokens=response.output_tokens if response else None,
        cost_usd=response.cost_usd if response else None,
        latency=latency,
        attempts=response.attempts if response else 1,
        error=str(error).splitlines()[0] if error else None,
        created_at=time.time(),
    )
    records = [pending.prompt_artifact, *([response_artifact] if response_artifact else [])]
    return _Outcome(
        response.text if response else "", call, records, response_artifact, error, value
    )


def _unusable(pending: _Pending, response: LLMResponse) -> KitaruExecutionError | None:
    """Why a structured answer cannot be used (a refusal, JSON that does not fit)."""
    model = pending.call.response_format
    if model is None:
        return None
    exec_id = pending.exec_id or ""
    if response.refusal:
        problem = f"the model refused: {response.refusal}"
        raw = response.refusal
    else:
        try:
            pending.call.result(response.text)
            return None
        except Exception as exc:  # pydantic's ValidationError, or JSON that does not parse
            first = str(exc).splitlines()
            problem = f"the answer is not a valid {model.__name__}: {first[1].strip() if len(first) > 1 else first[0]}"
            raw = response.text
    error = KitaruExecutionError(
        f"LLM call {pending.checkpoint or 'llm'}: {problem}. Raw answer: {raw[:500]!r}",
        exec_id=exec_id,
        status="failed",
    )
    error.raw_text = raw  # type: ignore[attr-defined]
    return error


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
