"""``kitaru artifacts gc``: find and delete blobs nothing refers to."""

from __future__ import annotations

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, echo, print_json

app = typer.Typer(help="Artifacts in the active stack's artifact store.", no_args_is_help=True)


@app.command()
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be deleted"),
    settle: float = typer.Option(
        5.0, "--settle", min=0, help="seconds a blob must stay unreferenced before it goes"
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Delete blobs in the artifact store that no execution or memory version refers to."""
    from kitaru_core.stack_registry import get_stack
    from kitaru_core.store.metadata_store import get_store
    from kitaru_core.worker import retention

    store, stack = get_store(), get_stack()
    if dry_run:
        keys = retention.unreferenced_blobs(store, stack)
    else:
        keys = retention.collect_garbage(store, stack, settle=settle)
    if output is OutputFormat.json:
        print_json({"dry_run": dry_run, "blobs": keys})
        return
    for key in keys:
        echo(stack.artifact_store.uri(key))
    verb = "would delete" if dry_run else "deleted"
    echo(f"{verb} {len(keys)} unreferenced blob(s) in stack {stack.name!r}")
