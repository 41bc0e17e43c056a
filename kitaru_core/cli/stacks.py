"""``kitaru stack ...``: register, activate, inspect and delete stacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, print_json, print_table, text

app = typer.Typer(help="Register stack files and choose the active stack.", no_args_is_help=True)


@app.command("register")
def register(
    file: Path = typer.Argument(..., help="the stack file (YAML)"),
    activate: bool = typer.Option(False, "--activate", help="make it the active stack"),
) -> None:
    """Check a stack file and register it (shared by everyone using this metadata store)."""
    from kitaru_core.stack_registry import register as register_stack

    definition = register_stack(file, activate=activate)
    typer.echo(f"registered stack {definition.name}" + (" (active)" if activate else ""))


@app.command("activate")
def activate(name: str) -> None:
    """Make NAME the active stack for this user (KITARU_STACK overrides it)."""
    from kitaru_core.stack_registry import activate_stack

    activate_stack(name)
    typer.echo(f"active stack: {name}")


def _describe(name: str | None) -> dict[str, Any]:
    from kitaru_core.stack_info import describe_stack

    return describe_stack(name)


@app.command("list")
def list_(output: OutputFormat = OutputOption) -> None:
    """List the stacks; the active one is marked."""
    from kitaru_core.stack_registry import stack_names

    described = [_describe(name) for name in stack_names()]
    if output is OutputFormat.json:
        print_json(described)
        return
    print_table(
        "Stacks",
        ["active", "name", "artifact store", "secret provider", "orchestrator", "llm gateway"],
        [
            (
                "*" if d["active"] else "",
                d["name"],
                *(c["flavor"] + (" (default)" if c["default"] else "") for c in d["components"]),
            )
            for d in described
        ],
    )


@app.command("describe")
def describe(
    name: str = typer.Argument(None, help="default: the active stack"),
    output: OutputFormat = OutputOption,
) -> None:
    """Show each component: flavor, the plugin that provides it, its config (secrets masked)."""
    import json

    described = _describe(name)
    if output is OutputFormat.json:
        print_json(described)
        return
    typer.echo(
        f"stack {described['name']}"
        + (" (active)" if described["active"] else "")
        + f"  from {described['source']}"
    )
    print_table(
        None,
        ["component", "flavor", "plugin", "config"],
        [
            (
                c["component"],
                c["flavor"] + (" (default)" if c["default"] else ""),
                f"{c['plugin']} {c['plugin_version']}"
                if c["installed"]
                else text("not installed", "red"),
                json.dumps(c["config"]) if c["config"] else "",
            )
            for c in described["components"]
        ],
    )


@app.command("validate")
def validate(file: Path) -> None:
    """Check a stack file without registering it, secret references included."""
    from kitaru_core.stack_registry import validate_file

    stack = validate_file(file)
    typer.echo(f"stack file {file} is valid (stack {stack.name})")


@app.command("export")
def export(name: str) -> None:
    """Print a registered stack as a stack file (secret references stay references)."""
    import yaml

    from kitaru_core.stack_registry import load_definition

    typer.echo(yaml.safe_dump(load_definition(name).to_mapping(), sort_keys=False).rstrip())


@app.command("delete")
def delete(
    name: str,
    force: bool = typer.Option(
        False, "--force", help="delete even if executions on it still run or wait"
    ),
) -> None:
    """Delete a registered stack (not the active one, not `local`)."""
    from kitaru_core.stack_registry import delete_stack

    delete_stack(name, force=force)
    typer.echo(f"deleted stack {name}")
