"""``kitaru secrets ...`` on the active stack's secret provider."""

from __future__ import annotations

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, print_json, print_table

app = typer.Typer(help="Secrets in the active stack's secret provider.", no_args_is_help=True)

StackOption = typer.Option(None, "--stack", help="default: the active stack")


@app.command("set")
def set_(
    name: str,
    value: str = typer.Option(
        ..., "--value", prompt=True, hide_input=True, help="asked for when left out, unechoed"
    ),
    stack: str = StackOption,
) -> None:
    """Create or replace a secret."""
    from kitaru_core.stack_registry import get_stack

    target = get_stack(stack)
    target.secret_provider.set(name, value)
    typer.echo(
        f"secret {name} set in stack {target.name} ({target.flavor('secret_provider').name})"
    )


@app.command("list")
def list_(stack: str = StackOption, output: OutputFormat = OutputOption) -> None:
    """List secret names (never values)."""
    from kitaru_core.stack_registry import get_stack

    names = get_stack(stack).secret_provider.list()
    if output is OutputFormat.json:
        print_json(names)
    else:
        print_table("Secrets", ["name"], [(n,) for n in names])


@app.command("delete")
def delete(name: str, stack: str = StackOption) -> None:
    """Delete a secret."""
    from kitaru_core.stack_registry import get_stack

    get_stack(stack).secret_provider.delete(name)
    typer.echo(f"secret {name} deleted")
