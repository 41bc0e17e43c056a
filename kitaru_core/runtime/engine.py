"""Creating executions and running them: the one machine behind start, resume and retry.

Running always means: take the lease, run the flow body from the top with the journal
loaded, let every completed checkpoint answer from it, and record how the body ended.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Coroutine
from typing import Any, Literal, NamedTuple, TypeVar

from kitaru_core.artifacts import Artifacts, new_id
from kitaru_core.errors import (
    KitaruDivergenceError,
    KitaruLeaseLost,
    KitaruStateError,
    KitaruUntrustedError,
    KitaruUsageError,
)
from kitaru_core.events import ExecutionEnded, ExecutionStarted
from kitaru_core.loaded_plugins import get_plugins
from kitaru_core.runtime import lease, printed, trust
from kitaru_core.runtime.code_archive import archive_for, ships
from kitaru_core.runtime.code_version import code_version_of
from kitaru_core.runtime.context import (
    ExecutionCancelled,
    ExecutionContext,
    ExecutionStopped,
    Suspended,
    current_execution,
)
from kitaru_core.runtime.dispatch import wake_parent
from kitaru_core.runtime.flow_ref import FlowDefinition, source_root_for
from kitaru_core.runtime.journal import JournalReader
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.orchestration import begin_retry
from kitaru_core.runtime.scopes import TASK_PATHS
from kitaru_core.runtime.step import error_info
from kitaru_core.runtime.tracing import set_attributes, span, span_id_of
from kitaru_core.runtime.wait import WaitSuspended
from kitaru_core.settings import load_settings
from kitaru_core.stack import Stack
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import ArtifactRecord, ExecutionRecord, Status
from kitaru_core.untrusted import validate_exec_id

T = TypeVar("T")
RunMode = Literal["start", "resume", "retry"]


class Created(NamedTuple):
    record: ExecutionRecord
    new: bool
    """False when ``exec_id`` named an execution that already existed with the same
    flow and inputs (an idempotent start): it is not started again."""


def create_execution(
    flow: FlowDefinition[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    stack: Stack,
    exec_id: str | None = None,
    parent: tuple[str, int] | None = None,
    started_by: str | None = None,
) -> Created:
    """Record a new execution and its inputs; nothing is written if an input is refused.
    ``parent``: (execution id, journal position) of the flow body that started it;
    ``started_by``: the name of the API token that asked the server for it.

    ``exec_id`` chosen by the caller makes the start idempotent: if it exists with the
    same flow and inputs, that execution is returned; with others, ``KitaruStateError``.
    Two processes racing on one id create one execution (the id is the primary key).
    A flow with a concurrency limit or a key starts ``queued``.
    """
    store = get_store(stack.settings)
    try:
        bound = flow.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise KitaruUsageError(f"flow {flow.name!r} cannot take these arguments: {exc}") from None
    chosen = exec_id is not None
    exec_id = validate_exec_id(exec_id) if chosen else new_id()
    if chosen and (existing := store.get_execution(exec_id)) is not None:
        # Checked before writing inputs, so a repeat costs one read; compared after.
        inputs = write_inputs(stack.artifacts, exec_id, flow, bound)
        return Created(_same_start(existing, flow, inputs_digest(inputs)), new=False)
    inputs = write_inputs(stack.artifacts, exec_id, flow, bound)
    queue, key = flow.queue_of(bound)
    source_root = source_root_for(flow.func)
    options: dict[str, Any] = {
        "retries": flow.retries,
        "cache": flow.cache,
        "source_root": source_root,
        "inputs": inputs_digest(inputs),
        TASK_PATHS: True,
    }
    code_archive = None
    if stack.ships_code and ships(flow):
        tree, archived = archive_for(flow, stack, store, exec_id)
        code_archive, options["code_root"] = tree.digest, str(tree.root)
        inputs = [*inputs, archived]
    options[trust.SIGNATURE] = trust.reference_signature(
        stack, flow.ref, source_root, flow.name, code_archive
    )
    if flow.concurrency is not None:
        options["concurrency"] = flow.concurrency
    if flow.settings:
        options["settings"] = flow.settings
    if flow.budget:
        options["budget"] = flow.budget
    record = ExecutionRecord(
        id=exec_id,
        flow_name=flow.name,
        flow_ref=flow.ref,
        status=Status.QUEUED if queue else Status.RUNNING,
        stack=stack.name,
        created_at=time.time(),
        options=options,
        queue=queue,
        queue_key=key,
        parent_exec_id=parent[0] if parent else None,
        parent_position=parent[1] if parent else None,
        code_version=code_version_of(flow),
        code_archive=code_archive,
        started_by=started_by,
    )
    try:
        return Created(store.create_execution(record, inputs), new=True)
    except store.db.integrity_error:
        existing = store.get_execution(exec_id) if chosen else None
        if existing is None:
            raise
        return Created(_same_start(existing, flow, options["inputs"]), new=False)


def inputs_digest(inputs: list[ArtifactRecord]) -> str:
    """What identifies a start's inputs: each argument's name, serializer and content hash."""
    parts = sorted((a.name, a.serializer, a.key) for a in inputs)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _same_start(
    existing: ExecutionRecord, flow: FlowDefinition[Any, Any], digest: str
) -> ExecutionRecord:
    if existing.flow_name == flow.name and existing.options.get("inputs") == digest:
        return existing
    what = (
        f"flow {existing.flow_name!r}"
        if existing.flow_name != flow.name
        else "the same flow with other inputs"
    )
    raise KitaruStateError(
        f"execution id {existing.id!r} is already taken by an execution of {what}; an "
        "id starts one execution only. Use another id, or the same inputs to get that "
        f"execution back (`kitaru executions get {existing.id}`)"
    )


def write_inputs(
    artifacts: Artifacts,
    exec_id: str,
    flow: FlowDefinition[Any, Any],
    bound: inspect.BoundArguments,
) -> list[ArtifactRecord]:
    """Each argument of the flow as an input artifact (refused before anything is stored
    when one cannot be serialized)."""
    return [
        artifacts.write(
            value,
            exec_id=exec_id,
            name=param,
            role="input",
            what=f"argument {param!r} of flow {flow.name!r}",
        )
        for param, value in bound.arguments.items()
    ]


def _check_runnable(record: ExecutionRecord, mode: RunMode) -> None:
    status = record.status
    allowed = {
        "start": (Status.RUNNING,),
        "resume": (Status.RUNNING, Status.WAITING, Status.SLEEPING),
        "retry": (Status.FAILED, Status.CANCELLED),
    }
    if status in allowed[mode] and not (mode == "start" and record.runs > 0):
        return
    exec_id = record.id
    if status == Status.COMPLETED:
        raise KitaruStateError(
            f"execution {exec_id} has already completed; nothing to {mode}. Its result: "
            f"`kitaru executions get {exec_id}`; to run it again, start a new execution"
        )
    if status == Status.CANCELLED:
        raise KitaruStateError(
            f"execution {exec_id} was cancelled; continue it with "
            f"`kitaru executions retry {exec_id}`, or start a new execution"
        )
    if status == Status.FAILED and mode == "resume":
        raise KitaruStateError(
            f"execution {exec_id} failed; continue it with `kitaru executions retry {exec_id}`"
        )
    if status == Status.QUEUED:
        raise KitaruStateError(
            f"execution {exec_id} is queued behind others of its flow (its concurrency limit "
            "or key); `kitaru worker` starts it when its turn comes"
        )
    raise KitaruStateError(f"execution {exec_id} is {status}; it cannot be {mode}ed")


def run_execution(
    exec_id: str, *, mode: RunMode, interactive: bool = False, unattended: bool = False
) -> ExecutionRecord:
    """Run an execution in this process until it completes, fails, is cancelled or
    stops to wait for input. ``interactive``: a wait may ask at this terminal.
    ``unattended`` (a background worker): when the flow cannot even be loaded, the
    execution is marked failed with the reason, since nobody is watching this process."""
    settings = load_settings()
    store = get_store(settings)
    record = store.require_execution(exec_id)
    exec_id = record.id
    _check_runnable(record, mode)
    owner = lease.claim(store, exec_id)
    heartbeat: lease.Heartbeat | None = None
    try:
        # Read again under the lease: another process may have finished it meanwhile.
        current = store.get_execution(exec_id)
        assert current is not None
        record = current
        _check_runnable(record, mode)
        if mode == "retry":
            begin_retry(store, record)
        stack = get_stack(record.stack, settings)
        flow = trust.trusted_flow(record, stack)
        args, kwargs = load_inputs(store, stack.artifacts, record, flow.signature)
        store.mark_started(exec_id, owner)
        observers = get_plugins().observers
        observers.execution_started(
            ExecutionStarted(
                exec_id=exec_id, flow_name=record.flow_name, stack=record.stack, mode=mode
            )
        )
        heartbeat = lease.Heartbeat(store, exec_id, owner)
        heartbeat.start()
        ctx = ExecutionContext(
            exec_id=exec_id,
            flow_name=record.flow_name,
            store=store,
            journal=JournalReader(store, exec_id),
            default_retries=int(record.options.get("retries") or 0),
            cancelled=heartbeat.cancelled,
            interactive=interactive,
            observers=observers,
            stack=stack,
            key=record.queue_key,
            budget=record.options.get("budget"),
            owner=owner,
            task_paths=bool(record.options.get(TASK_PATHS)),
        )
        verb = {"start": "started", "resume": "resumed", "retry": "retried"}[mode]
        log_event(
            exec_id,
            f"{verb} flow {record.flow_name} in {lease.describe_owner(owner)} "
            f"({ctx.journal.last_position + 1} journal positions)",
        )
        attributes = {
            "kitaru.exec_id": exec_id,
            "kitaru.flow": record.flow_name,
            "kitaru.mode": mode,
            "kitaru.run": record.runs + 1,
            "kitaru.stack": record.stack,
        }
        # A resumed run's span links to the run before it: one story across processes.
        with span(
            f"kitaru.execution {record.flow_name}",
            attributes,
            link_to=record.options.get("trace"),
        ) as current_span:
            if (reference := span_id_of(current_span)) is not None:
                store.merge_execution_options(exec_id, {"trace": reference})
            # What the body prints and logs is kept in this run's output too.
            with printed.kept(store, exec_id, record.runs + 1):
                suspended_on, final = _run_body(flow, ctx, args, kwargs, owner)
            _mark_span(current_span, final)
    except BaseException as exc:
        if heartbeat is None:  # failed before the body ran
            if unattended and isinstance(exc, Exception) and not isinstance(exc, KitaruStateError):
                _fail_unloadable(store, exec_id, owner, mode, exc)
            else:  # someone is watching: leave the execution as it was
                store.release_lease(exec_id, owner)
        raise
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    observers.execution_ended(
        ExecutionEnded(exec_id=exec_id, flow_name=final.flow_name, status=final.status)
    )
    if final.parent_exec_id is not None:
        wake_parent(store, final)  # a child that ended resumes a parent waiting for it
    if isinstance(suspended_on, WaitSuspended):
        # Input that arrived while this process was letting go found the execution still
        # running and did not resume it: pick it up here, so no answer is left unread.
        wait = store.waits.get(exec_id, suspended_on.name)
        if wait is not None and wait.status == "answered":
            return run_execution(exec_id, mode="resume", interactive=interactive)
    return final


def _fail_unloadable(
    store: MetadataStore, exec_id: str, owner: str, mode: RunMode, exc: Exception
) -> None:
    message = (
        f"could not {mode} execution {exec_id}: {type(exc).__name__}: {exc}. Fix the cause "
        f"(a moved script, a missing module or package), then run "
        f"`kitaru executions retry {exec_id}`"
    )
    if isinstance(exc, KitaruUntrustedError):  # it says what to do itself
        message = f"{exc}, then `kitaru executions retry {exec_id}`"
    store.fail_run(exec_id, owner, {**error_info(exc), "message": message})
    log_event(exec_id, f"failed before running: {message}")


def _mark_span(current: Any, final: ExecutionRecord) -> None:
    if current is None:
        return
    set_attributes(current, **{"kitaru.status": final.status})
    if final.status == Status.FAILED:
        from opentelemetry import trace  # only when a span exists: the program imported it

        message = (final.error or {}).get("message", "")
        current.set_status(trace.Status(trace.StatusCode.ERROR, message))


def _run_body(
    flow: FlowDefinition[Any, Any],
    ctx: ExecutionContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    owner: str,
) -> tuple[Suspended | None, ExecutionRecord]:
    """Run the flow body and record how it ended: (what it stopped at if it suspended,
    the execution as it now is)."""
    store, exec_id = ctx.store, ctx.exec_id

    def finish(status: str, **outcome: Any) -> ExecutionRecord:
        ended = store.finish(exec_id, owner, status, **outcome)
        if ended is None:  # cancelled meanwhile: its status stays
            ended = store.get_execution(exec_id)
            assert ended is not None
        return ended

    try:
        result = run_body(flow, ctx, args, kwargs)
        output = ctx.artifacts.write(
            result,
            exec_id=exec_id,
            name="result",
            role="result",
            what=f"the result of flow {flow.name!r}",
        )
    except Suspended as suspended:
        return suspended, finish(suspended.status, wake_at=suspended.wake_at)
    except ExecutionCancelled:
        log_event(exec_id, "cancelled")
        return None, finish(Status.CANCELLED)
    except ExecutionStopped:  # this process must go: let another continue from here
        store.release_lease(exec_id, owner)
        log_event(exec_id, "stopped: this process was asked to stop; left for a worker to recover")
        current = store.get_execution(exec_id)
        assert current is not None
        return None, current
    except KitaruLeaseLost as exc:  # another process runs it now: end nothing, record nothing
        log_event(exec_id, f"stopped: {exc}")
        current = store.get_execution(exec_id)
        assert current is not None
        return None, current
    except KitaruDivergenceError as exc:
        log_event(exec_id, f"failed: {exc}")
        return None, finish(Status.FAILED, error={**error_info(exc), "divergence": True})
    except Exception as exc:
        log_event(exec_id, f"failed: {type(exc).__name__}: {exc}")
        return None, finish(Status.FAILED, error=error_info(exc))
    except KeyboardInterrupt as exc:  # Ctrl-C: the person stopped it; nothing went wrong
        finish(Status.CANCELLED)
        how = f"execution {exec_id} is cancelled; continue it with `kitaru executions retry {exec_id}`"
        log_event(exec_id, f"interrupted: {how}")
        exc.add_note(f"kitaru: {how}")
        raise
    except BaseException as exc:  # SystemExit and the like: record, then let it go on
        finish(Status.FAILED, error=error_info(exc))
        log_event(exec_id, f"interrupted: {type(exc).__name__}")
        raise
    ended = store.finish(exec_id, owner, Status.COMPLETED, result=output)
    if ended is not None:
        log_event(exec_id, "completed")
        return None, ended
    log_event(exec_id, "completed its body, but was cancelled meanwhile")
    return None, finish(Status.COMPLETED)


def run_body(
    flow: FlowDefinition[Any, Any],
    ctx: ExecutionContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """The flow body's return value, with ``ctx`` as its execution (an ``async def``
    body in an event loop of its own); every submitted checkpoint has ended by then."""
    token = current_execution.set(ctx)
    try:
        if inspect.iscoroutinefunction(flow.func):
            ctx.is_async = True
            result = run_coroutine(ctx.scoped(flow.func(*args, **kwargs)))
        else:
            result = flow.func(*args, **kwargs)
        ctx.drain()
        return result
    finally:
        ctx.settle()
        current_execution.reset(token)


def load_inputs(
    store: MetadataStore,
    artifacts: Artifacts,
    record: ExecutionRecord,
    signature: inspect.Signature,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    values = {a.name: artifacts.read(a) for a in store.list_artifacts(record.id, role="input")}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if name not in values:
            continue
        if param.kind is param.VAR_POSITIONAL:
            args.extend(values[name])
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(values[name])
        elif param.kind is param.POSITIONAL_ONLY:
            args.append(values[name])
        else:
            kwargs[name] = values[name]
    return tuple(args), kwargs


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an async flow body to its end from synchronous code: in an event loop of its
    own, in this thread, or in a thread of its own when this thread already runs one
    (``run()`` called from async code, or from a notebook)."""
    import asyncio  # only async flows pay for importing it
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="kitaru-async-flow") as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()
