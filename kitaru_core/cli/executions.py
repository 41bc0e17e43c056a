"""``kitaru executions ...`` and ``kitaru run``."""

from __future__ import annotations

import contextlib
import inspect
import sys
from typing import Any

import typer

from kitaru_core.cli.output import (
    OutputFormat,
    OutputOption,
    echo,
    interruptible,
    json_text,
    plain_text,
    print_json,
    print_line,
    print_table,
    progress,
    seconds,
    styled_status,
    text,
    when,
)
from kitaru_core.errors import KitaruError, KitaruUsageError

app = typer.Typer(help="Inspect executions and resume, retry or cancel them.", no_args_is_help=True)


def _client() -> Any:
    from kitaru_core.client import KitaruClient

    return KitaruClient()


@app.command("list")
def list_(
    flow: str = typer.Option(None, "--flow", help="only executions of this flow"),
    status: str = typer.Option(
        None,
        "--status",
        help="queued, running, sleeping, waiting, completed, failed or cancelled",
    ),
    limit: int = typer.Option(50, "--limit", "-n"),
    parent: str = typer.Option(None, "--parent", help="only the child flows of this execution"),
    code_version: str = typer.Option(
        None, "--code-version", help="only executions that run this code version"
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """List executions, newest first."""
    from kitaru_core.store.records import STATUSES

    if status is not None and status not in STATUSES:
        raise typer.BadParameter(
            f"{status!r} is not a status; use one of {', '.join(STATUSES)}",
            param_hint="--status",
        )
    client = _client()
    executions = client.executions.list(
        flow=flow, status=status, limit=limit, parent=parent, code_version=code_version
    )
    if output is OutputFormat.json:
        print_json([e.to_dict(with_result=False) for e in executions])
        return
    print_table(
        "Executions",
        ["id", "flow", "status", "code", "started", "duration"],
        [
            (
                e.exec_id,
                e.flow_name,
                styled_status(e.status),
                _short_version(e.code_version),
                when(e.started_at, compact=True),
                seconds(e.ended_at - e.started_at) if e.ended_at and e.started_at else "-",
            )
            for e in executions
        ],
    )


def _short_version(version: str | None) -> str:
    """A code version in a table: a digest's first 8 hex digits (as git shows
    commits), a name as it is (up to 12 characters)."""
    if version is None:
        return "-"
    if len(version) == 12 and all(c in "0123456789abcdef" for c in version):
        return version[:8]
    return version if len(version) <= 12 else version[:11] + "…"


@app.command()
def get(exec_id: str, output: OutputFormat = OutputOption) -> None:
    """Show one execution: its status, checkpoints, result or error."""
    execution = _client().executions.get(exec_id)
    if output is OutputFormat.json:
        print_json(execution.to_dict())
        return
    print_line(
        text(execution.exec_id, "bold"),
        "  flow ",
        text(execution.flow_name, "bold"),
        "  ",
        styled_status(execution.status),
        f"  stack {execution.stack}  runs {execution.runs}",
    )
    if execution.code_version:
        archive = f" (archive {execution.code_archive[:12]})" if execution.code_archive else ""
        print_line(f"code version {execution.code_version}{archive}")
    if execution.started_by:
        print_line(f"started by token {execution.started_by}")
    if execution.original_exec_id:
        print_line(f"replay of {execution.original_exec_id}")
    print_table(
        None,
        ["#", "checkpoint", "status", "attempts", "duration"],
        [
            (c.position, c.name, styled_status(c.status), c.attempts, seconds(c.duration))
            for c in execution.checkpoints
        ],
    )
    if execution.llm_calls:
        print_table(
            "LLM calls",
            ["checkpoint", "alias", "model", "in", "out", "latency", "cost", "error"],
            [
                (
                    c.checkpoint or "-",
                    c.alias or "-",
                    c.model,
                    c.input_tokens,
                    c.output_tokens,
                    seconds(c.latency),
                    _usd(c.cost_usd),
                    c.error or "",
                )
                for c in execution.llm_calls
            ],
        )
        totals = execution.llm_totals
        print_line(
            f"LLM totals: {totals['calls']} calls, {totals['input_tokens']} tokens in, "
            f"{totals['output_tokens']} out, {_usd(totals['cost_usd'])}"
        )
    if execution.budget:
        totals = execution.llm_totals
        parts = []
        if "max_cost_usd" in execution.budget:
            parts.append(
                f"{_usd(totals['cost_usd'] or 0.0)} of ${execution.budget['max_cost_usd']:g}"
            )
        if "max_llm_calls" in execution.budget:
            parts.append(f"{totals['calls']} of {execution.budget['max_llm_calls']} calls")
        print_line("budget: ", ", ".join(parts))
        if execution.metadata.get("budget_exceeded"):
            print_line(text("over budget: ", "red"), execution.metadata["budget_exceeded"])
    if execution.pending_wait is not None:
        wait = execution.pending_wait
        print_line(
            text("waiting for", "yellow"),
            f" {wait.name} ({wait.schema_name})",
            f": {wait.question}" if wait.question else "",
        )
        if wait.exec_id != execution.exec_id:
            print_line(f"  (its child flow {wait.exec_id} waits for it)")
        print_line(
            f"  answer: kitaru executions input {wait.exec_id} --wait {wait.name} --value JSON"
        )
    if execution.status == "sleeping" and execution.wake_at:
        print_line(text("sleeping until", "magenta"), f" {when(execution.wake_at)}")
    hint = _stalled_hint(execution)
    if hint:
        print_line(text("stalled: ", "yellow"), hint)
    if execution.status == "completed":
        print_line("result: ", json_text(execution.result, 400, raw_strings=True))
    if execution.error:
        print_line(
            text("error:", "red"),
            f" {execution.error.get('type')}: {execution.error.get('message')}",
        )


def _stalled_hint(execution: Any) -> str | None:
    """What to do when nothing will continue the execution by itself: its runner died,
    or its timer is due, and no worker serves its stack. None otherwise, and over HTTP
    (the server runs a worker)."""
    import time

    from kitaru_core.settings import load_settings

    if load_settings().server_url or execution.status not in ("running", "sleeping"):
        return None
    from kitaru_core.runtime import lease
    from kitaru_core.store.metadata_store import get_store
    from kitaru_core.worker.liveness import serves

    now = time.time()
    record = get_store().get_execution(execution.exec_id)
    if record is None:
        return None

    if serves(get_store(), record.stack):
        return None
    resume = f"`kitaru executions resume {record.id}`"
    worker = f"`kitaru worker` (stack {record.stack!r})"
    if record.status == "running" and record.lease_owner is not None:
        if lease.owner_is_alive(record.lease_owner, record.lease_heartbeat, now):
            return None
        return (
            f"{lease.describe_owner(record.lease_owner)}, which ran it, died and no worker "
            f"is running to recover it: continue it with {resume}, or start {worker}"
        )
    if record.status == "sleeping" and record.wake_at is not None:
        if record.wake_at <= now:
            return (
                f"its timer is due but no worker is running to wake it: continue it with "
                f"{resume}, or start {worker}"
            )
        return f"no worker is running to wake it when its timer is due: start {worker}"
    return None


def _usd(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.6f}"


def _finish(handle: Any, output: OutputFormat) -> None:
    execution = _client().executions.get(handle.exec_id)
    if output is OutputFormat.json:
        print_json(execution.to_dict())
    else:
        echo(execution.exec_id, execution.status)
        if execution.status == "completed":
            echo("result:", json_text(execution.result, 400, raw_strings=True))
        elif execution.error:
            echo(f"error: {execution.error.get('type')}: {execution.error.get('message')}")
        elif execution.pending_wait is not None:
            _print_wait(execution.exec_id, execution.pending_wait)
        hint = _stalled_hint(execution)
        if hint:
            echo(f"note: {hint}")
    if execution.status == "failed":
        raise typer.Exit(1)


@app.command("input")
def input_(
    exec_id: str,
    wait: str = typer.Option(
        None, "--wait", "-w", help="the wait's name; optional when one is pending"
    ),
    value: str = typer.Option(
        None, "--value", "-v", help="JSON (plain text where the wait expects a string)"
    ),
    value_file: str = typer.Option(
        None, "--value-file", help="read the value from this file ('-': standard input)"
    ),
    abort: bool = typer.Option(False, "--abort", help="refuse: the execution ends cancelled"),
    no_resume: bool = typer.Option(
        False,
        "--no-resume",
        help="record the input only: a worker or `executions resume` continues it",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Answer a waiting execution; it resumes in the background."""
    from kitaru_core.cli.values import parse_for_schema, parse_value, read_value_file

    client = _client()
    if abort:
        execution = client.executions.abort_wait(exec_id, wait=wait)
    elif value is None and value_file is None:
        raise typer.BadParameter("give --value JSON, --value-file PATH, or --abort")
    else:
        raw = value if value is not None else read_value_file(value_file)
        pending = _pending_wait(client, exec_id, wait)
        parsed = (
            parse_for_schema(raw, pending.schema, pending.schema_name, "--value")
            if pending is not None
            else parse_value(raw, "--value")
        )
        execution = client.executions.input(exec_id, wait=wait, value=parsed, resume=not no_resume)
    if output is OutputFormat.json:
        print_json(execution.to_dict(with_result=False))
    elif abort:
        echo(execution.exec_id, execution.status)
    elif no_resume:
        echo(
            "input recorded; a running `kitaru worker` continues it, or resume it with: "
            f"kitaru executions resume {execution.exec_id}"
        )
    elif execution.status == "waiting" and execution.pending_wait is not None:
        echo("input recorded; the execution waits for more:")
        _print_wait(execution.exec_id, execution.pending_wait)
    else:
        echo(
            f"input recorded; resuming in the background. Follow with: "
            f"kitaru executions logs {execution.exec_id}"
        )


def _pending_wait(client: Any, exec_id: str, name: str | None) -> Any:
    """The wait this input is for, when it can be told (else ``input`` says why not)."""
    try:
        pending = client.executions.pending_waits(exec_id)
    except KitaruError:
        return None
    matching = [w for w in pending if name is None or w.name == name]
    return matching[0] if len(matching) == 1 else None


def _print_wait(exec_id: str, wait: Any) -> None:
    """What the execution waits for, and the command that answers it."""
    echo(
        f"waiting for {wait.name} ({wait.schema_name})"
        + (f": {wait.question}" if wait.question else "")
    )
    echo(f"answer with: kitaru executions input {exec_id} --wait {wait.name} --value JSON")


@app.command()
def waits(output: OutputFormat = OutputOption) -> None:
    """List the waits nobody has answered yet."""
    pending = _client().executions.pending_waits()
    if output is OutputFormat.json:
        print_json(pending)
        return
    print_table(
        "Pending waits",
        ["execution", "wait", "expects", "question", "since"],
        [(w.exec_id, w.name, w.schema_name, w.question or "", when(w.created_at)) for w in pending],
    )


@app.command()
def replay(
    exec_id: str,
    from_: str = typer.Option(
        ..., "--from", help="the checkpoint (name or position) to run live from"
    ),
    override: list[str] = typer.Option(
        [], "--override", help="checkpoint.NAME=JSON: use this instead of the recorded output"
    ),
    arg: list[str] = typer.Option([], "--arg", "-a", help="key=value: replace a flow input"),
    output: OutputFormat = OutputOption,
) -> None:
    """Run a new execution that reuses EXEC_ID's record up to --from."""
    from kitaru_core.cli.values import flow_arguments

    client = _client()
    source = client.executions.get(exec_id)
    overrides = _overrides(client, source, override)
    flow_inputs = flow_arguments(_flow_of(source), arg) if arg else {}
    start: str | int = int(from_) if from_.isdigit() else from_
    with interruptible():
        handle = client.executions.replay(
            source.exec_id, from_=start, overrides=overrides, **flow_inputs
        )
    _finish(handle, output)


@app.command("diff")
def diff_(exec_a: str, exec_b: str, output: OutputFormat = OutputOption) -> None:
    """Compare two executions checkpoint by checkpoint."""
    result = _client().diff(exec_a, exec_b)
    if output is OutputFormat.json:
        print_json(result.to_dict())
        return
    from rich.console import Console
    from rich.syntax import Syntax

    console = Console()
    if result.code_changed:
        a_code, b_code = result.code_versions
        print_line(text("code changed: ", "yellow"), f"a ran {a_code}, b ran {b_code}")
    rows = [*result.checkpoints, *([result.result] if result.result else [])]
    print_table(
        f"{result.exec_a} → {result.exec_b}",
        ["#", "checkpoint", "status", "duration a", "duration b", "tokens a", "tokens b"],
        [
            (
                "" if c.position < 0 else c.position,
                c.name,
                text(*_DIFF_STYLE[c.status]),
                seconds(c.duration_a),
                seconds(c.duration_b),
                "" if c.tokens_a is None else c.tokens_a,
                "" if c.tokens_b is None else c.tokens_b,
            )
            for c in rows
        ],
    )
    for c in rows:
        if c.diff:
            console.print(
                Syntax(plain_text(c.diff), "diff", theme="ansi_dark", background_color="default")
            )


_DIFF_STYLE = {
    "same": ("same", ""),
    "changed": ("changed", "yellow"),
    "only_a": ("only in a", "red"),
    "only_b": ("only in b", "green"),
}


CodeOption = typer.Option(
    "recorded",
    "--code",
    help="recorded: the code it started with; current: move it to today's code first",
)


@app.command()
def resume(exec_id: str, code: str = CodeOption, output: OutputFormat = OutputOption) -> None:
    """Resume a crashed or waiting execution in this process; completed checkpoints are
    answered from the journal."""
    with interruptible():
        handle = _client().executions.resume(exec_id, **_code(code))
    _finish(handle, output)


@app.command()
def retry(exec_id: str, code: str = CodeOption, output: OutputFormat = OutputOption) -> None:
    """Continue a failed or cancelled execution from its last completed checkpoint."""
    with interruptible():
        handle = _client().executions.retry(exec_id, **_code(code))
    _finish(handle, output)


def _code(code: str) -> dict[str, str]:
    """The ``code`` argument, given only when it is not the default (a server's client
    takes none: moving code needs this deployment's signing key)."""
    if code not in ("recorded", "current"):
        raise typer.BadParameter(
            f"{code!r}: use 'recorded' (the code it started with) or 'current'",
            param_hint="--code",
        )
    return {} if code == "recorded" else {"code": code}


@app.command()
def upgrade(
    exec_id: str = typer.Argument(None, metavar="[ID]"),
    all_waiting: bool = typer.Option(
        False, "--all-waiting", help="every waiting or sleeping execution"
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="only say whether each would replay on the current code"
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Replay executions' journals against the current code, running nothing: which
    would diverge, and where. Without --dry-run, those that replay are moved to the
    current code (its version, and its source archive with `code: archive`); exits 1
    when any would diverge."""

    from kitaru_core.runtime.upgrade import check_upgrade, move_to_current, waiting_executions
    from kitaru_core.store.metadata_store import get_store

    if (exec_id is None) == (not all_waiting):
        raise KitaruUsageError("name one execution, or give --all-waiting (not both)")
    store = get_store()
    ids = [exec_id] if exec_id else [r.id for r in waiting_executions(store)]
    checks = []
    with progress("replaying journals") as report:
        for done, one in enumerate(ids):
            report(f"{done} of {len(ids)}")
            check = check_upgrade(one, store)
            if check.verdict == "ok" and not dry_run:
                check.detail += f"; moved to code {move_to_current(one, store)}"
            checks.append(check)
    if output is OutputFormat.json:
        print_json([c.to_dict() for c in checks])
    else:
        style = {"ok": "green", "diverges": "red", "error": "red"}
        print_table(
            "Replayed on the current code" + (" (dry run)" if dry_run else ""),
            ["id", "flow", "status", "verdict", "detail"],
            [
                (c.exec_id, c.flow_name, c.status, text(c.verdict, style[c.verdict]), c.detail)
                for c in checks
            ],
        )
        bad = sum(c.verdict != "ok" for c in checks)
        echo(f"{len(checks) - bad} of {len(checks)} replay on the current code")
    if any(c.verdict != "ok" for c in checks):
        raise typer.Exit(1)


@app.command()
def trust(
    exec_id: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask: you have inspected it"),
) -> None:
    """Trust an execution's flow reference (sign it with this deployment's key) after
    inspecting it: one refused as unsigned, or recorded by another deployment."""

    from kitaru_core.runtime import trust as trusting
    from kitaru_core.store.metadata_store import get_store

    store = get_store()
    record = store.require_execution(exec_id)
    if trusting.is_trusted(record):
        echo(f"execution {record.id} is already trusted: it runs {record.flow_ref}")
        return
    root = record.options.get("source_root") or "-"
    echo(
        f"execution {record.id} ({record.status}) runs flow {record.flow_name} from "
        f"{record.flow_ref} (source root {root}); trusting it lets any process of this "
        "deployment import that code to run it"
    )
    if not yes:
        if not sys.stdin.isatty():
            raise KitaruUsageError(
                f"confirm with `kitaru executions trust {record.id} --yes` once you have "
                "inspected that code"
            )
        typer.confirm("Trust it?", abort=True)
    trusting.sign(store, record)
    verb = "retry" if record.status in ("failed", "cancelled") else "resume"
    echo(f"trusted {record.id}; continue it with `kitaru executions {verb} {record.id}`")


@app.command()
def cancel(exec_id: str) -> None:
    """Cancel an execution; a running one stops at its next checkpoint."""
    execution = _client().executions.cancel(exec_id)
    echo(execution.exec_id, execution.status)


@app.command()
def logs(
    exec_id: str,
    tail: int | None = typer.Option(
        None, "--tail", min=0, help="only the last N lines of each run's log"
    ),
) -> None:
    """Print an execution's log, and what its runs printed where they ran (pods)."""
    sys.stdout.write(plain_text(_client().executions.logs(exec_id, tail=tail)))


@app.command()
def delete(
    exec_ids: list[str] = typer.Argument(..., metavar="ID..."),
    output: OutputFormat = OutputOption,
) -> None:
    """Delete ended executions with their journals, LLM call records, logs, and the
    artifacts nothing else refers to."""
    deleted = _client().executions.delete(*exec_ids)
    if output is OutputFormat.json:
        print_json(deleted)
        return
    echo(f"deleted {len(deleted.executions)} execution(s) and {len(deleted.blobs)} blob(s)")


@app.command()
def prune(
    older_than: str = typer.Option(..., "--older-than", help="age, e.g. 30d, 12h"),
    status: str = typer.Option(
        "completed,failed,cancelled", "--status", help="comma-separated ended statuses"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be deleted"),
    limit: int = typer.Option(100, "--limit", min=1, help="with --dry-run: rows shown at most"),
    output: OutputFormat = OutputOption,
) -> None:
    """Delete ended executions older than --older-than (see `delete`), a page at a time."""
    from kitaru_core.worker.retention import parse_age

    try:
        age = parse_age(older_than)
    except KitaruUsageError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    statuses = [s.strip() for s in status.split(",") if s.strip()]
    client = _client()
    if dry_run:
        found = client.executions.prunable(older_than=age, statuses=statuses, limit=limit)
        if output is OutputFormat.json:
            print_json([{"exec_id": r.id, "flow": r.flow_name, "status": r.status} for r in found])
            return
        print_table(
            "Would delete",
            ["id", "flow", "status", "created"],
            [(r.id, r.flow_name, styled_status(r.status), when(r.created_at)) for r in found],
        )
        if len(found) == limit:
            echo(f"(the newest {limit}; --limit shows more)")
        return
    with progress("pruning") as report:
        deleted = client.executions.prune(
            older_than=age,
            statuses=statuses,
            on_page=lambda d: report(f"{len(d.executions)} execution(s) deleted"),
        )
    if output is OutputFormat.json:
        print_json(deleted)
        return
    echo(f"deleted {len(deleted.executions)} execution(s) and {len(deleted.blobs)} blob(s)")


def _flow_of(execution: Any) -> Any:
    from kitaru_core.runtime.trust import trusted_flow

    return trusted_flow(execution._record)


def _overrides(client: Any, source: Any, pairs: list[str]) -> dict[str, Any]:
    """``--override checkpoint.NAME=VALUE``: each value checked against the type the
    checkpoint's recorded output had."""
    from kitaru_core.cli.values import parse_for_annotation, split_pair, type_of_record

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, raw = split_pair(pair, "--override")
        name = key.removeprefix("checkpoint.")
        recorded = [
            c
            for c in source.checkpoints
            if (c.name == name or str(c.position) == name) and c.artifact_id
        ]
        annotation: Any = inspect.Parameter.empty
        if recorded:
            type_ref = client.artifacts.get(recorded[-1].artifact_id).type_ref
            with contextlib.suppress(KitaruError):
                annotation = type_of_record(type_ref)
        overrides[key] = parse_for_annotation(raw, annotation, f"--override {key}")
    return overrides


def run(
    target: str = typer.Argument(..., metavar="MODULE:FLOW", help="e.g. myapp.flows:research"),
    arg: list[str] = typer.Option([], "--arg", "-a", help="key=value; the value is JSON or text"),
    stack: str = typer.Option(None, "--stack", help="run on this stack instead of the active one"),
    exec_id: str = typer.Option(
        None, "--exec-id", help="an id of your choosing: starting it again starts nothing"
    ),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="return at once; the execution runs in the background"
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Start an execution of a flow."""
    from kitaru_core.runtime.flow import Flow
    from kitaru_core.runtime.flow_ref import resolve_new_flow

    flow = resolve_new_flow(target)
    if not isinstance(flow, Flow):
        raise KitaruUsageError(f"{target} is not a @flow")
    from kitaru_core.cli.values import flow_arguments

    kwargs = flow_arguments(flow, arg)
    if detach:
        handle = flow.start(stack=stack, exec_id=exec_id, **kwargs)
        if output is OutputFormat.json:
            print_json({"exec_id": handle.exec_id, "status": handle.status})
        else:
            echo(handle.exec_id, handle.status)
            echo(f"follow with: kitaru executions get {handle.exec_id}")
        return
    with interruptible():
        handle = flow.run(stack=stack, exec_id=exec_id, **kwargs)
    _finish(handle, output)
