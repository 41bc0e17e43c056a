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
        None,
        "--value",
        help="asked for unechoed when left out; read from standard input when it is piped",
    ),
    stack: str = StackOption,
) -> None:
    """Create or replace a secret."""
    from kitaru_core.stack_registry import get_stack

    if value is None:
        value = _read_value(name)
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


def _read_value(name: str) -> str:
    """The secret's value: typed at an unechoed prompt, or piped in (``echo $KEY |
    kitaru secrets set NAME``), read quietly with its one trailing newline dropped."""
    import sys

    from kitaru_core.errors import KitaruUsageError

    if sys.stdin is None or not sys.stdin.isatty():
        value = sys.stdin.read() if sys.stdin is not None else ""
        value = value.removesuffix("\n").removesuffix("\r")
    else:
        value = typer.prompt(f"Value of {name}", hide_input=True)
    if not value:
        raise KitaruUsageError(
            f"no value for secret {name}: pipe it in, type it at the prompt, or pass --value"
        )
    return value
