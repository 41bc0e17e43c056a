"""An agent framework's model request or tool call, run as one journaled step of the flow
body: what the PydanticAI and OpenAI Agents adapters share.

Like a checkpoint, the step is answered from the journal when an earlier run completed
it, else its body runs (with its retries, within its timeout) and its output is recorded
before the agent sees it. Unlike a checkpoint it is built per call by the adapter (no
decorator), commits the model call's LLM record in the same transaction as its entry
(one commit per model request), and treats an agent framework's control-flow exceptions
(a tool asking the model to try again, a deferred call) as answers: recorded, raised
again on replay, never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kitaru_core.artifacts import new_row_id
from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime.context import (
    CheckpointFrame,
    ExecutionContext,
    current_checkpoint,
    current_execution,
)
from kitaru_core.runtime.llm import check_budget
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.step import Step
from kitaru_core.store.records import LLMCallRecord

T = TypeVar("T")

RAISED = "raised"
"""The journal entry's metadata key naming the control-flow exception the step ended in."""


def flow_body() -> ExecutionContext | None:
    """The running execution when code runs in its flow body (not in a checkpoint)."""
    ctx = current_execution.get()
    return ctx if ctx is not None and current_checkpoint.get() is None else None


@dataclass(frozen=True)
class ModelUsage:
    """What a model request cost, for the execution's LLM calls (and its budget)."""

    model: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None


@dataclass
class ControlFlow(Generic[T]):
    """How a framework's control-flow exceptions are recorded and raised again."""

    types: tuple[type[BaseException], ...] = ()
    dump: Callable[[BaseException], dict[str, Any]] = lambda exc: {"args": list(exc.args)}
    revive: Callable[[str, dict[str, Any]], BaseException] | None = None


@dataclass
class StepSpec(Generic[T]):
    """One call's step: its name, how its value is stored, and how it is run."""

    name: str
    encode: Callable[[T], Any] = lambda value: value
    decode: Callable[[Any], T] = lambda stored: stored
    retries: int | None = None
    """Attempts after the first (default: the flow's ``retries``)."""
    timeout: float | None = None
    """Seconds an attempt may take before it fails (and is retried)."""
    usage: Callable[[T], ModelUsage] | None = None
    """For a model request: its usage, recorded as one of the execution's LLM calls;
    the flow's budget is checked before it runs."""
    price_refusal: Callable[[], str | None] | None = None
    """For a model request: why it must be refused under the flow's ``max_cost_usd``
    (its model has no known price: it would count as free, and the budget could never
    stop the flow), or None. Asked only when the flow sets ``max_cost_usd``."""
    control_flow: ControlFlow[Any] = field(default_factory=ControlFlow)
    metadata: dict[str, Any] = field(default_factory=dict)


async def run_step(ctx: ExecutionContext, spec: StepSpec[T], body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` as a step of the flow body (``ctx``), or answer it from the journal."""
    call = OpenStep(ctx, spec)
    if call.replayed:
        return call.value
    retries = ctx.default_retries if spec.retries is None else spec.retries
    attempt = 0
    while True:
        attempt += 1
        call.begin()
        try:
            if spec.timeout is None:
                value = await body()
            else:
                value = await asyncio.wait_for(body(), spec.timeout)
        except spec.control_flow.types as exc:
            await call.answered(exc)
            raise
        except Exception as exc:
            if attempt > retries:
                call.failed(exc)
                raise
            log_event(
                ctx.exec_id,
                f"step {spec.name} attempt {attempt} failed: {type(exc).__name__}: {exc}; retrying",
            )
            continue
        finally:
            call.end()
        await call.completed(value)
        return value


class OpenStep(Generic[T]):
    """One call's step, opened (addressed) when it is called: either ``replayed`` (its
    ``value`` is the recorded one, or the control-flow exception it ended in is raised)
    or to run, between ``begin`` and ``end``, then ``completed``, ``answered`` or
    ``failed``. A streamed call runs its stream between ``begin`` and ``end``."""

    def __init__(self, ctx: ExecutionContext, spec: StepSpec[T]) -> None:
        self.ctx = ctx
        self.spec = spec
        self.attempts = 0
        self._token: Any = None
        self._started = 0.0
        self.step = step = ctx.open_step(spec.name, "checkpoint")
        recorded = ctx.answer(step)
        self.replayed = recorded is not None
        if recorded is not None:
            stored = ctx.artifacts.read(recorded)
            assert step.found is not None
            raised = step.found[0].metadata.get(RAISED)
            if raised is not None and spec.control_flow.revive is not None:
                raise spec.control_flow.revive(raised, stored)
            self.value = spec.decode(stored)
            return
        ctx.check_cancelled()
        if spec.usage is not None:
            check_budget(ctx)  # the flow's max_cost_usd and max_llm_calls count it
            if spec.price_refusal is not None and (ctx.budget or {}).get("max_cost_usd"):
                refusal = spec.price_refusal()
                if refusal is not None:
                    raise KitaruUsageError(f"step {spec.name!r} was not run: {refusal}")

    def begin(self, *, inside: bool = True) -> None:
        """An attempt starts: code run now is inside the step (tasks it makes take no
        scope, a ``kitaru.save`` is the step's, a ``kitaru.llm`` is recorded against it).
        ``inside=False`` for a stream the caller reads: its reader may end in another
        task than it began, so the step's context cannot be entered."""
        self.attempts += 1
        self.frame = CheckpointFrame(
            self.spec.name, self.step.position, dict(self.spec.metadata), on_loop=True
        )
        if inside:
            self._token = current_checkpoint.set(self.frame)
        self._started = time.perf_counter()

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """The one attempt of a stream the caller reads (``begin(inside=False)``): a
        failure while it is read is recorded; ``completed`` records the whole stream."""
        self.begin(inside=False)
        try:
            yield
        except Exception as exc:
            self.failed(exc)
            raise

    def end(self) -> None:
        if self._token is not None:
            current_checkpoint.reset(self._token)
            self._token = None

    async def completed(self, value: T) -> None:
        latency = time.perf_counter() - self._started
        llm_call = _llm_call(self.step, self.spec, value, latency)
        await self._record(self.spec.encode(value), llm_call)

    async def answered(self, exc: BaseException) -> None:
        """The body raised a control-flow exception: recorded, to raise again on replay."""
        self.frame.metadata[RAISED] = type(exc).__name__
        await self._record(self.spec.control_flow.dump(exc), None)

    def failed(self, exc: BaseException) -> None:
        self.step.fail(exc, attempts=self.attempts, metadata=self.frame.metadata)
        log_event(
            self.ctx.exec_id,
            f"step {self.spec.name} failed after {self.attempts} attempt(s): "
            f"{type(exc).__name__}: {exc}",
        )

    async def _record(self, stored: Any, llm_call: LLMCallRecord | None) -> None:
        """The output, entry and LLM call in one commit; in a thread when bytes go to
        the artifact store, so other agents' steps go on meanwhile."""
        step, frame = self.step, self.frame
        what = f"the output of step {self.spec.name!r}"
        prepared = self.ctx.artifacts.prepare(stored, what=what)

        def record() -> None:
            output = step.output(stored, what=what, prepared=prepared)
            entry = step.entry(output.id, attempts=self.attempts, metadata=frame.metadata)
            calls = [llm_call] if llm_call is not None else []
            step.record(entry, [output, *frame.all_saved()], llm_calls=calls)
            step.ended(entry)

        if prepared.uploads or frame.uploads:
            await asyncio.to_thread(record)
        else:
            record()


def _llm_call(step: Step, spec: StepSpec[T], value: T, latency: float) -> LLMCallRecord | None:
    if spec.usage is None:
        return None
    usage = spec.usage(value)
    return LLMCallRecord(
        id=new_row_id(),
        exec_id=step.ctx.exec_id,
        position=step.position,
        checkpoint=step.name,
        alias=None,
        model=usage.model,
        prompt_artifact_id=None,
        response_artifact_id=None,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        latency=latency,
        attempts=1,
        error=None,
        created_at=time.time(),
    )
