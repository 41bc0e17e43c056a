"""``kitaru model ...``: user-level model aliases (a stack's own aliases override them)."""

from __future__ import annotations

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, print_json, print_table

app = typer.Typer(help="Model aliases for kitaru.llm(model=ALIAS).", no_args_is_help=True)


@app.command("register")
def register(
    alias: str,
    model: str = typer.Option(..., "--model", help="provider/model, e.g. openai/gpt-4o-mini"),
    secret: str = typer.Option(None, "--secret", help="the secret holding the provider key"),
    api_base: str = typer.Option(None, "--api-base", help="a custom endpoint"),
) -> None:
    """Register (or replace) a user-level alias."""
    from kitaru_core.model_aliases import register_alias

    params = {"api_base": api_base} if api_base else {}
    registered = register_alias(alias, model, secret=secret, **params)
    typer.echo(f"alias {registered.alias} -> {registered.model}")


@app.command("delete")
def delete(alias: str) -> None:
    """Delete a user-level alias (a stack's own aliases live in its stack file)."""
    from kitaru_core.model_aliases import delete_alias

    delete_alias(alias)
    typer.echo(f"deleted alias {alias}")


@app.command("list")
def list_(
    stack: str = typer.Option(None, "--stack", help="default: the active stack"),
    output: OutputFormat = OutputOption,
) -> None:
    """Aliases the stack sees: user-level ones and the stack's own (which win)."""
    from kitaru_core.model_aliases import alias_table
    from kitaru_core.stack import mask_config
    from kitaru_core.stack_registry import get_stack

    table = alias_table(get_stack(stack))
    rows = [
        {
            "alias": a.alias,
            "model": a.model,
            "source": a.source,
            "params": mask_config({k: v for k, v in a.config.items() if k != "model"}),
        }
        for a in table.values()
    ]
    if output is OutputFormat.json:
        print_json(rows)
        return
    print_table(
        "Model aliases",
        ["alias", "model", "source", "parameters"],
        [
            (
                r["alias"],
                r["model"],
                r["source"],
                ", ".join(f"{k}={v}" for k, v in r["params"].items()),
            )
            for r in rows
        ],
    )
