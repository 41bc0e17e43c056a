"""The ``kitaru`` command. Subcommands import the engine only when they run, so
``kitaru --help`` stays fast; plugins may add commands (``kitaru_register_commands``)."""

from __future__ import annotations

import typer

from kitaru_core.cli import executions, memory, models, plugins, secrets, stacks

app = typer.Typer(
    name="kitaru",
    help="Durable execution for Python agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(executions.app, name="executions")
app.add_typer(memory.app, name="memory")
app.add_typer(stacks.app, name="stack")
app.add_typer(plugins.app, name="plugins")
app.add_typer(secrets.app, name="secrets")
app.add_typer(models.app, name="model")
app.command("run")(executions.run)


@app.command()
def version() -> None:
    """Print Kitaru's version."""
    from kitaru_core import __version__

    typer.echo(__version__)


def main() -> None:
    from kitaru_core.cli.output import fail
    from kitaru_core.errors import KitaruError

    try:
        from kitaru_core.plugins import get_plugins

        get_plugins().pm.hook.kitaru_register_commands(app=app)
        app()
    except KitaruError as exc:
        raise SystemExit(fail(f"{exc}").exit_code) from None
