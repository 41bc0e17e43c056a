"""``kitaru serve``, ``kitaru mcp`` and ``kitaru tokens``."""

from __future__ import annotations

import time
from typing import Any

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, echo, print_json, print_table, when

FlowsOption = typer.Option(
    None,
    "--flows",
    "-f",
    help="a module or script whose flows may be started (repeatable; default: "
    "[tool.kitaru] flows in pyproject.toml)",
)


def _needs_server_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import mcp  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from kitaru_core.errors import KitaruUsageError

        raise KitaruUsageError(
            f"the server needs {exc.name}, which is not installed; run: "
            'pip install "kitaru[server]"'
        ) from None


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="the address to listen on"),
    port: int = typer.Option(8765, "--port", "-p"),
    flows: list[str] = FlowsOption,
    worker: bool = typer.Option(
        True, "--worker/--no-worker", help="run the worker loop in this process"
    ),
    concurrency: int = typer.Option(8, "--concurrency", help="executions the worker runs at once"),
    stack: str = typer.Option(None, "--stack", help="the worker's stack (default: the active one)"),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="no tokens needed (loopback addresses only)"
    ),
    log_level: str = typer.Option("info", "--log-level"),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log"),
    request_timeout: float = typer.Option(
        10.0, "--request-timeout", min=0.1, help="seconds a request may take to arrive whole"
    ),
    max_connections: int = typer.Option(
        None,
        "--max-connections",
        min=1,
        help="open connections at most (default: from the file limit)",
    ),
) -> None:
    """Serve the HTTP API (/api/v1), its event stream and metrics, and MCP (/mcp)."""
    _needs_server_extra()
    from kitaru_core.server.main import serve as run

    run(
        host=host,
        port=port,
        flows=flows or [],
        worker=worker,
        concurrency=concurrency,
        insecure_no_auth=insecure_no_auth,
        stack=stack,
        log_level=log_level,
        access_log=access_log,
        say=echo,
        request_timeout=request_timeout,
        max_connections=max_connections,
    )


def mcp(flows: list[str] = FlowsOption) -> None:
    """Serve the MCP tools over stdin and stdout (for a local agent or IDE)."""
    _needs_server_extra()
    from kitaru_core.server.main import serve_mcp_stdio

    serve_mcp_stdio(flows or [])


tokens = typer.Typer(help="API tokens for `kitaru serve`.", no_args_is_help=True)


def _store() -> Any:
    from kitaru_core.store.metadata_store import get_store

    return get_store()


@tokens.command("create")
def create(
    name: str,
    scope: str = typer.Option(..., "--scope", help="read, input, run or admin"),
    expires: str = typer.Option(None, "--expires", help="for example 90d, 12h, 2w"),
    output: OutputFormat = OutputOption,
) -> None:
    """Create a token. It is printed once; only its hash is stored."""
    from kitaru_core.server.tokens import create_token, parse_duration
    from kitaru_core.server.views import token_json

    made = create_token(
        _store(), name, scope, expires_in=parse_duration(expires) if expires else None
    )
    if output is OutputFormat.json:
        print_json({**token_json(made.record), "token": made.token})
        return
    echo(made.token)
    typer.echo(
        f"token {name!r} ({scope}) created; it is shown only now. Send it as "
        "'Authorization: Bearer TOKEN'",
        err=True,
    )


@tokens.command("list")
def list_(output: OutputFormat = OutputOption) -> None:
    """Tokens, with their scope, expiry and last use (never the token itself)."""
    from kitaru_core.server.views import token_json

    records = _store().tokens.list()
    if output is OutputFormat.json:
        print_json([token_json(r) for r in records])
        return
    now = time.time()
    print_table(
        "API tokens",
        ["name", "id", "scope", "created", "expires", "last used", "state"],
        [
            (
                r.name,
                r.id,
                r.scope,
                when(r.created_at),
                when(r.expires_at) if r.expires_at else "never",
                when(r.last_used_at) if r.last_used_at else "-",
                "revoked"
                if r.revoked_at
                else "expired"
                if r.expires_at and r.expires_at <= now
                else "active",
            )
            for r in records
        ],
    )


@tokens.command("revoke")
def revoke(name: str, output: OutputFormat = OutputOption) -> None:
    """Revoke a token by name or id: it is refused from the next request on."""
    from kitaru_core.server.tokens import revoke_token
    from kitaru_core.server.views import token_json

    record = revoke_token(_store(), name)
    if output is OutputFormat.json:
        print_json(token_json(record))
    else:
        echo(f"revoked token {record.name!r} ({record.id})")
