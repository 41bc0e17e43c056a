"""``kitaru worker``: run the active stack by itself; ``kitaru worker status``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, print_json, print_table, when

app = typer.Typer(
    help="Run the active stack by itself: recover crashed executions, fire timers and "
    "schedules, start queued executions, prune old ones.",
    invoke_without_command=True,
)


@app.callback()
def worker(
    ctx: typer.Context,
    concurrency: int = typer.Option(
        8, "--concurrency", "-c", min=1, help="executions this worker runs at once"
    ),
    once: bool = typer.Option(
        False, "--once", help="one pass, then exit (for cron or a Kubernetes CronJob)"
    ),
    poll: float = typer.Option(1.0, "--poll", min=0.01, help="seconds between passes"),
    stack: str = typer.Option(None, "--stack", help="serve this stack instead of the active one"),
    heartbeat_file: Path = typer.Option(
        None,
        "--heartbeat-file",
        help="touched on every pass, for a liveness probe (a stale file: a stuck worker)",
    ),
    code_version: list[str] = typer.Option(
        None,
        "--code-version",
        help="continue executions of this code version too (repeatable; default: the "
        "version of the code this worker imports)",
    ),
    any_version: bool = typer.Option(
        False, "--any-version", help="continue executions whatever code they started with"
    ),
) -> None:
    """Run the worker until SIGTERM or Ctrl-C (running executions are let finish)."""
    if ctx.invoked_subcommand is not None:
        return
    from kitaru_core.worker.service import Worker

    service = Worker(
        stack=stack,
        concurrency=concurrency,
        poll=poll,
        heartbeat_file=heartbeat_file,
        code_versions=code_version or [],
        any_version=any_version,
    )
    if once:
        counts = service.run_once()
        done = {k: v for k, v in counts.items() if k != "passes" and v}
        summary = ", ".join(f"{k} {v}" for k, v in sorted(done.items())) or "nothing was due"
        typer.echo(f"one pass: {summary}", err=True)
        return
    service.run_forever()


@app.command()
def status(output: OutputFormat = OutputOption) -> None:
    """Workers that share this metadata store, and what each has done."""
    from kitaru_core.store.metadata_store import get_store
    from kitaru_core.worker.liveness import is_alive
    from kitaru_core.worker.versions import unserved

    store = get_store()
    workers = store.workers.list()
    now = time.time()

    def state(record: Any) -> str:
        if record.counts.get("state") == "stopped":
            return "stopped"
        return "running" if is_alive(record, now) else "lost"

    waiting = unserved(store, [w for w in workers if state(w) == "running"])
    if output is OutputFormat.json:
        print_json(
            {"workers": [{**w.__dict__, "state": state(w)} for w in workers], "unserved": waiting}
        )
        return
    columns = [
        "recovered",
        "timers",
        "expired_waits",
        "answered_waits",
        "fired",
        "dispatched",
        "pruned",
        "failed",
    ]

    def did(counts: dict[str, int]) -> str:
        done = [f"{c.replace('_', ' ')} {counts[c]}" for c in columns if counts.get(c)]
        return ", ".join(done) or "-"

    print_table(
        "Workers",
        ["worker", "stack", "state", "last seen", "did", "lag"],
        [
            (
                w.id.rsplit(":", 2)[0],
                w.stack,
                state(w),
                when(w.heartbeat_at),
                did(w.counts),
                f"{w.counts.get('lag_seconds', 0):.3f} s",
            )
            for w in workers
        ],
    )
    for group in waiting:
        typer.echo(
            f"{group['executions']} execution(s) of stack {group['stack']} wait for code "
            f"version {group['code_version']} that no worker runs: start a worker with that "
            "code (or `--code-version`), or move them with `kitaru executions upgrade`"
        )
