"""``kitaru schedule ...``: run a flow on a cron schedule (the worker fires it)."""

from __future__ import annotations

from typing import Any

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, echo, print_json, print_table

app = typer.Typer(
    help="Run flows on cron schedules; `kitaru worker` fires them.", no_args_is_help=True
)


def _schedules() -> Any:
    from kitaru_core.client import KitaruClient

    return KitaruClient().schedules


def _utc(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _local(ts: float, timezone: str) -> str:
    import datetime as dt

    from kitaru_core.worker.schedules import zone

    return dt.datetime.fromtimestamp(ts, zone(timezone)).strftime("%Y-%m-%d %H:%M %Z")


@app.command()
def create(
    name: str,
    target: str = typer.Argument(..., metavar="MODULE:FLOW", help="e.g. myapp.flows:report"),
    cron: str = typer.Option(..., "--cron", help="five cron fields, e.g. '0 9 * * 1-5'"),
    arg: list[str] = typer.Option([], "--arg", "-a", help="key=value; the value is JSON or text"),
    timezone: str = typer.Option("UTC", "--timezone", "--tz", help="IANA name, e.g. Europe/Berlin"),
    catchup: str = typer.Option(
        "skip", "--catchup", help="slots missed while no worker ran: skip, latest or all"
    ),
    stack: str = typer.Option(None, "--stack", help="run on this stack instead of the active one"),
    output: OutputFormat = OutputOption,
) -> None:
    """Create a schedule: each slot starts one execution, NAME@<slot in UTC>."""
    from kitaru_core.cli.values import flow_arguments
    from kitaru_core.runtime.flow_ref import resolve_new_flow

    flow = resolve_new_flow(target)
    record = _schedules().create(
        name,
        flow,
        cron=cron,
        args=flow_arguments(flow, arg) if arg else {},
        timezone=timezone,
        catchup=catchup,
        stack=stack,
    )
    if output is OutputFormat.json:
        print_json(record)
        return
    echo(f"schedule {record.name} created; first firing {_local(record.next_at, record.timezone)}")
    echo("a running `kitaru worker` fires it")


@app.command("list")
def list_(output: OutputFormat = OutputOption) -> None:
    """Every schedule with its next firing."""
    records = _schedules().list()
    if output is OutputFormat.json:
        print_json(records)
        return
    print_table(
        "Schedules",
        ["name", "flow", "cron", "timezone", "catch-up", "state", "next", "last execution"],
        [
            (
                r.name,
                r.flow_name,
                r.cron,
                r.timezone,
                r.catchup,
                "paused" if r.paused else "active",
                "-" if r.paused else _local(r.next_at, r.timezone),
                r.last_exec_id or "-",
            )
            for r in records
        ],
    )


@app.command()
def describe(name: str, output: OutputFormat = OutputOption) -> None:
    """One schedule and its next five firings."""
    schedules = _schedules()
    record = schedules.get(name)
    firings = schedules.next_firings(name, 5)
    if output is OutputFormat.json:
        print_json({**record.__dict__, "next_firings": firings})
        return
    echo(f"{record.name}: flow {record.flow_name} ({record.flow_ref}) on stack {record.stack}")
    echo(f"cron {record.cron!r} in {record.timezone}, catch-up {record.catchup}")
    echo("paused" if record.paused else "active", f"; arguments {record.args}")
    print_table(
        "Next firings",
        ["local time", "UTC", "execution id"],
        [(_local(f, record.timezone), _utc(f), _slot_id(record.name, f)) for f in firings],
    )


def _slot_id(name: str, slot: float) -> str:
    from kitaru_core.worker.schedules import slot_exec_id

    return slot_exec_id(name, slot)


@app.command()
def pause(name: str) -> None:
    """Stop firing until resumed."""
    echo(f"schedule {_schedules().pause(name).name} paused")


@app.command()
def resume(name: str) -> None:
    """Fire again from the next slot (slots passed while paused are not fired)."""
    record = _schedules().resume(name)
    echo(f"schedule {record.name} resumed; next firing {_local(record.next_at, record.timezone)}")


@app.command()
def delete(name: str) -> None:
    """Delete a schedule (its executions stay)."""
    _schedules().delete(name)
    echo(f"schedule {name} deleted")
