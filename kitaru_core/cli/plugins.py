"""``kitaru plugins list``: what is installed, what it provides, and what failed."""

from __future__ import annotations

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, print_json, print_table, text

app = typer.Typer(help="Installed plugins and the flavors they provide.", no_args_is_help=True)


@app.command("list")
def list_(output: OutputFormat = OutputOption) -> None:
    """List plugins, their versions and flavors, and any that failed to load (with why)."""
    from kitaru_core.plugins import get_plugins

    infos = list(get_plugins().infos.values())
    if output is OutputFormat.json:
        from kitaru_core.stack_info import describe_plugins

        print_json(describe_plugins())
        return
    # The distribution is in --output json: four columns fit 80 with every plugin here.
    print_table(
        "Plugins",
        ["plugin", "version", "flavors", "state"],
        [
            (
                i.name,
                i.version,
                "\n".join(i.flavors) or "-",
                "loaded" if i.loaded else text("failed", "red") + text(f": {i.error}"),
            )
            for i in infos
        ],
    )
