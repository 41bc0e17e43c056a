"""The ``kitaru`` command. Subcommands import the engine only when they run, so
``kitaru --help`` stays fast; plugins may add commands (``kitaru_register_commands``)."""

from __future__ import annotations

import typer

from kitaru_core.cli import (
    artifacts,
    executions,
    login,
    memory,
    models,
    plugins,
    schedules,
    secrets,
    serve,
    stacks,
    worker,
)

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
app.add_typer(worker.app, name="worker")
app.add_typer(schedules.app, name="schedule")
app.add_typer(artifacts.app, name="artifacts")
app.command("run")(executions.run)
app.command("serve")(serve.serve)
app.command("mcp")(serve.mcp)
app.add_typer(serve.tokens, name="tokens")
app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("status")(login.status)


def _print_version(value: bool) -> None:
    if value:
        from kitaru_core import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Durable execution for Python agents."""


@app.command()
def version() -> None:
    """Print Kitaru's version."""
    from kitaru_core import __version__

    typer.echo(__version__)


def _point_to_missing_plugins() -> None:
    """A first-party plugin's command whose plugin is not installed says which package
    provides it, rather than "No such command"."""
    from kitaru_core.flavors import PLUGIN_COMMANDS, install_command

    present = {g.name for g in app.registered_groups} | {c.name for c in app.registered_commands}
    for name, extra in PLUGIN_COMMANDS.items():
        if name in present:
            continue

        def missing(ctx: typer.Context, name: str = name, extra: str = extra) -> None:
            from kitaru_core.errors import KitaruUsageError

            raise KitaruUsageError(
                f"`kitaru {name}` comes with the kitaru-{extra} plugin, which is not "
                f"installed; install it with: {install_command([extra])}"
            )

        app.command(
            name,
            hidden=True,
            context_settings={
                "allow_extra_args": True,
                "ignore_unknown_options": True,
                "help_option_names": [],
            },
        )(missing)


def main() -> None:
    """Every command ends in one line naming the cause and the fix, never a traceback
    (``KITARU_DEBUG=1`` shows the traceback of an unexpected error)."""
    import os

    from kitaru_core.cli.output import print_error
    from kitaru_core.errors import KitaruError

    try:
        from kitaru_core.plugins import get_plugins

        get_plugins().pm.hook.kitaru_register_commands(app=app)
        _point_to_missing_plugins()
        app()
    except KitaruError as exc:
        print_error(str(exc))
        raise SystemExit(1) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print_error(
            f"{exc.strerror or exc}{where}; check that the path exists and is writable "
            "(KITARU_HOME, the stack's paths) and that the disk is not full"
        )
        raise SystemExit(1) from None
    except Exception as exc:
        if os.environ.get("KITARU_DEBUG"):
            raise
        print_error(
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in Kitaru or a plugin; "
            "run again with KITARU_DEBUG=1 for the traceback and report it"
        )
        raise SystemExit(1) from None
