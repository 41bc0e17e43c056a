"""``kitaru memory ...``: read and write versioned memory from the command line."""

from __future__ import annotations

from typing import Any

import typer

from kitaru_core.cli.output import (
    OutputFormat,
    OutputOption,
    echo,
    fail,
    json_text,
    print_json,
    print_table,
    when,
)
from kitaru_core.cli.values import parse_value

app = typer.Typer(help="Read and write Kitaru's versioned memory.", no_args_is_help=True)

ScopeOption = typer.Option(
    "default", "--scope", "-s", help="the scope's name (a namespace, flow name or execution id)"
)
ScopeTypeOption = typer.Option(
    "namespace", "--scope-type", "-t", help="namespace, flow or execution"
)


def _scope(scope: str, scope_type: str) -> Any:
    from kitaru_core.client import KitaruClient

    return KitaruClient().memories.scope(scope, scope_type)


def _rows(entries: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            e.key,
            e.version,
            "(deleted)" if e.deleted else json_text(e.value, 60),
            e.exec_id or "-",
            when(e.created_at),
        )
        for e in entries
    ]


COLUMNS = ["key", "version", "value", "written by", "at"]


@app.command("list")
def list_(
    prefix: str = typer.Option(None, "--prefix"),
    scope: str = ScopeOption,
    scope_type: str = ScopeTypeOption,
    output: OutputFormat = OutputOption,
) -> None:
    """List the keys of a scope with their newest values."""
    entries = _scope(scope, scope_type).list(prefix)
    if output is OutputFormat.json:
        print_json(entries)
        return
    print_table(f"Memory {scope_type}:{scope}", COLUMNS, _rows(entries))
    if not entries:
        _where_memory_is(scope_type, scope)


@app.command()
def get(
    key: str,
    version: int = typer.Option(None, "--version"),
    scope: str = ScopeOption,
    scope_type: str = ScopeTypeOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Print a key's value (its newest version, or --version N)."""
    entry = _scope(scope, scope_type).get_entry(key, version=version)
    if entry is None:
        fail(f"memory {scope_type}:{scope} has no key {key!r}")
    if output is OutputFormat.json:
        print_json(entry)
    elif entry.deleted:
        fail(
            f"memory {scope_type}:{scope} key {key!r} was deleted at version {entry.version}; "
            f"`kitaru memory history {key}` shows its earlier values"
        )
    else:
        echo("(deleted)" if entry.deleted else json_text(entry.value, raw_strings=True))


@app.command("set")
def set_(
    key: str,
    value: str = typer.Argument(None, help="JSON, or plain text"),
    value_file: str = typer.Option(
        None, "--value-file", help="read the value from this file ('-': standard input)"
    ),
    expected_version: int = typer.Option(None, "--expected-version", help="compare-and-set"),
    scope: str = ScopeOption,
    scope_type: str = ScopeTypeOption,
) -> None:
    """Write a new version of a key (VALUE is JSON, or plain text)."""
    from kitaru_core.cli.values import read_value_file

    if (value is None) == (value_file is None):
        raise typer.BadParameter("give VALUE or --value-file PATH (one of them)")
    raw = value if value is not None else read_value_file(value_file)
    version = _scope(scope, scope_type).set(
        key,
        parse_value(raw, f"memory value {key!r}"),
        expected_version=expected_version,
        data_only=True,
    )
    echo(f"{key} version {version}")


@app.command()
def delete(key: str, scope: str = ScopeOption, scope_type: str = ScopeTypeOption) -> None:
    """Delete a key (a tombstone version; its history stays)."""
    version = _scope(scope, scope_type).delete(key)
    echo(f"{key} deleted at version {version}")


@app.command()
def history(
    key: str,
    scope: str = ScopeOption,
    scope_type: str = ScopeTypeOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Every version of a key, newest first."""
    entries = _scope(scope, scope_type).history(key)
    if output is OutputFormat.json:
        print_json(entries)
    else:
        print_table(f"History of {key}", COLUMNS, _rows(entries))


def _where_memory_is(scope_type: str, scope: str) -> None:
    """An empty scope: say which scopes hold keys (a flow writes to its own by default)."""

    from kitaru_core.store.metadata_store import get_store

    others = [s for s in get_store().memory.scopes() if s != (scope_type, scope)]
    if others:
        shown = ", ".join(f"{t}:{n}" for t, n in others[:6]) + (", ..." if len(others) > 6 else "")
        echo(
            f"{scope_type}:{scope} holds no keys. Scopes that do: {shown}. A flow writes to "
            "its own scope by default: kitaru memory list --scope-type flow --scope FLOW_NAME"
        )
    else:
        echo("no memory has been written yet")
