"""Tables for people, JSON for programs: every listing supports ``--output json``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import typer


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OutputOption = typer.Option(
    OutputFormat.table, "--output", "-o", help="table for people, json for programs"
)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return {k: v for k, v in value.__dict__.items() if not k.startswith("_")}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


STATUS_STYLE = {
    "running": "cyan",
    "waiting": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "#", "execution"))
    for row in rows:
        table.add_row(*(str(c) for c in row))
    Console().print(table)


def styled_status(status: str) -> str:
    style = STATUS_STYLE.get(status, "white")
    return f"[{style}]{status}[/{style}]"


def fail(message: str, code: int = 1) -> typer.Exit:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/bold red] {escape(message)}", highlight=False
    )
    return typer.Exit(code)
