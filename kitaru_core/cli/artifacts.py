"""``kitaru artifacts gc``: find and delete blobs nothing refers to."""

from __future__ import annotations

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, echo, print_json, progress

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
        if output is OutputFormat.json:
            print_json({"dry_run": True, "blobs": list(keys)})
            return
        found = 0
        for key in keys:  # printed as found: the store may hold millions
            echo(stack.artifact_store.uri(key))
            found += 1
        echo(f"would delete {found} unreferenced blob(s) in stack {stack.name!r}")
        return
    with progress("collecting garbage") as report:
        deleted = retention.collect_garbage(
            store, stack, settle=settle, on_deleted=lambda n: report(f"{n} blob(s) deleted")
        )
    if output is OutputFormat.json:
        print_json({"dry_run": False, "blobs": deleted})
        return
    for key in deleted:
        echo(stack.artifact_store.uri(key))
    echo(f"deleted {len(deleted)} unreferenced blob(s) in stack {stack.name!r}")
