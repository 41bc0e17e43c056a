"""``kitaru executions ...`` and ``kitaru run``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

from kitaru_core.cli.output import (
    OutputFormat,
    OutputOption,
    print_json,
    print_table,
    seconds,
    styled_status,
    when,
)

app = typer.Typer(help="Inspect executions and resume, retry or cancel them.", no_args_is_help=True)


def _client() -> Any:
    from kitaru_core.client import KitaruClient

    return KitaruClient()


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("list")
def list_(
    flow: str = typer.Option(None, "--flow", help="only executions of this flow"),
    status: str = typer.Option(
        None, "--status", help="running, waiting, completed, failed, cancelled"
    ),
    limit: int = typer.Option(50, "--limit", "-n"),
    output: OutputFormat = OutputOption,
) -> None:
    """List executions, newest first."""
    executions = _client().executions.list(flow=flow, status=status, limit=limit)
    if output is OutputFormat.json:
        print_json([e.to_dict(with_result=False) for e in executions])
        return
    print_table(
        "Executions",
        ["id", "flow", "status", "checkpoints", "started", "duration"],
        [
            (
                e.exec_id,
                e.flow_name,
                styled_status(e.status),
                len(e.checkpoints),
                when(e.started_at),
                seconds(e.ended_at - e.started_at) if e.ended_at and e.started_at else "-",
            )
            for e in executions
        ],
    )


@app.command()
def get(exec_id: str, output: OutputFormat = OutputOption) -> None:
    """Show one execution: its status, checkpoints, result or error."""
    execution = _client().executions.get(exec_id)
    if output is OutputFormat.json:
        print_json(execution.to_dict())
        return
    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]{execution.exec_id}[/bold]  flow [bold]{execution.flow_name}[/bold]  "
        f"{styled_status(execution.status)}  stack {execution.stack}  "
        f"runs {execution.runs}"
    )
    if execution.original_exec_id:
        console.print(f"replay of {execution.original_exec_id}")
    print_table(
        None,
        ["#", "checkpoint", "status", "attempts", "duration"],
        [
            (c.position, c.name, styled_status(c.status), c.attempts, seconds(c.duration))
            for c in execution.checkpoints
        ],
    )
    if execution.status == "completed":
        console.print("result:", _short(execution.result, 400), highlight=False)
    if execution.error:
        console.print(
            f"[red]error:[/red] {execution.error.get('type')}: {execution.error.get('message')}",
            highlight=False,
        )


def _finish(handle: Any, output: OutputFormat) -> None:
    execution = _client().executions.get(handle.exec_id)
    if output is OutputFormat.json:
        print_json(execution.to_dict())
    else:
        typer.echo(f"{execution.exec_id} {execution.status}")
        if execution.status == "completed":
            typer.echo(f"result: {_short(execution.result, 400)}")
        elif execution.error:
            typer.echo(f"error: {execution.error.get('type')}: {execution.error.get('message')}")
    if execution.status == "failed":
        raise typer.Exit(1)


@app.command()
def resume(exec_id: str, output: OutputFormat = OutputOption) -> None:
    """Resume a crashed or waiting execution in this process; completed checkpoints
    are answered from the journal."""
    _finish(_client().executions.resume(exec_id), output)


@app.command()
def retry(exec_id: str, output: OutputFormat = OutputOption) -> None:
    """Continue a failed execution from its last completed checkpoint."""
    _finish(_client().executions.retry(exec_id), output)


@app.command()
def cancel(exec_id: str) -> None:
    """Cancel an execution; a running one stops at its next checkpoint."""
    execution = _client().executions.cancel(exec_id)
    typer.echo(f"{execution.exec_id} {execution.status}")


@app.command()
def logs(exec_id: str) -> None:
    """Print an execution's log."""
    sys.stdout.write(_client().executions.logs(exec_id))


def _parse_arg(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{text!r} is not key=value", param_hint="--arg")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw  # plain text needs no quoting


def run(
    target: str = typer.Argument(..., metavar="MODULE:FLOW", help="e.g. myapp.flows:research"),
    arg: list[str] = typer.Option([], "--arg", "-a", help="key=value; the value is JSON or text"),
    stack: str = typer.Option(None, "--stack", help="run on this stack instead of the active one"),
    output: OutputFormat = OutputOption,
) -> None:
    """Start an execution of a flow."""
    import importlib

    from kitaru_core.runtime.flow import Flow

    module_name, sep, attr = target.partition(":")
    if not sep or not attr:
        raise typer.BadParameter("expected MODULE:FLOW, e.g. myapp.flows:research")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module_name.endswith(".py"):
        from kitaru_core.runtime.flow_ref import _import_script

        module = _import_script(os.path.abspath(module_name))
    else:
        module = importlib.import_module(module_name)
    flow = getattr(module, attr, None)
    if not isinstance(flow, Flow):
        raise typer.BadParameter(f"{target} is not a @flow", param_hint="MODULE:FLOW")
    kwargs = dict(_parse_arg(a) for a in arg)
    _finish(flow.run(stack=stack, **kwargs), output)
