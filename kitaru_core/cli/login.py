"""``kitaru login``, ``kitaru logout`` and ``kitaru status``: which metadata store this
machine uses, a ``kitaru serve`` reached with a token or the database itself.

The URL and the token are kept in the Kitaru home (``login.json``, mode 0600);
``KITARU_SERVER_URL`` and ``KITARU_TOKEN`` do the same for one process and win over it.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from kitaru_core.cli.output import OutputFormat, OutputOption, echo, print_json, print_table


def _whoami(url: str, token: str | None) -> dict[str, Any]:
    """What the server says of the token; raises the refusal or the unreachability."""
    from kitaru_core.store.http_store import ServerTransport, refusal

    transport = ServerTransport(url, token)
    try:
        status, data, _ = transport.request("GET", "/api/v1/whoami")
    finally:
        transport.close()
    if status != 200:
        raise refusal(status, data, "the token")
    answer: dict[str, Any] = json.loads(data)
    return answer


def login(
    url: str = typer.Argument(..., help="the server, e.g. https://kitaru.example.com"),
    token: str | None = typer.Option(
        None, "--token", help="an API token (`kitaru tokens create`); asked for when left out"
    ),
) -> None:
    """Use a Kitaru server for this machine's executions instead of a database: flows,
    workers and the CLI record and read through it with the token."""
    from kitaru_core.private_files import private_dir, write_private
    from kitaru_core.settings import load_settings, login_file

    if token is None:
        token = typer.prompt("API token", hide_input=True).strip()
    url = url.strip().rstrip("/")
    settings = load_settings()
    who = _whoami(url, token)  # nothing is kept unless the server takes the token
    private_dir(settings.home)
    write_private(login_file(settings.home), json.dumps({"url": url, "token": token}) + "\n")
    echo(
        f"logged in to {url} (Kitaru {who['version']}) as token {who['token']!r} "
        f"with scope {who['scope']!r}; saved in {login_file(settings.home)}"
    )


def logout() -> None:
    """Forget the server and token ``kitaru login`` kept: back to the database."""
    from kitaru_core.settings import load_settings, login_file

    path = login_file(load_settings().home)
    try:
        url = json.loads(path.read_text(encoding="utf-8")).get("url", "the server")
    except (OSError, ValueError):
        echo("not logged in to a Kitaru server")
        return
    path.unlink()
    echo(f"logged out of {url}; this machine uses its metadata store directly again")


def status(output: OutputFormat = OutputOption) -> None:
    """Which server or database this machine uses, as which token, on which stack."""
    import os

    from kitaru_core.errors import KitaruError
    from kitaru_core.settings import load_settings
    from kitaru_core.stack_registry import active_stack_name

    settings = load_settings()
    found: dict[str, Any] = {"stack": active_stack_name(settings)}
    if settings.server_url is not None:
        found["store"] = "server"
        found["server"] = settings.server_url
        found["from"] = (
            "KITARU_SERVER_URL" if os.environ.get("KITARU_SERVER_URL") else str(settings.login_file)
        )
        try:
            who = _whoami(settings.server_url, settings.token)
            found.update(answers=True, token=who["token"], scope=who["scope"])
            found["server_version"] = who["version"]
        except KitaruError as exc:
            found.update(answers=False, error=str(exc).splitlines()[0])
    elif settings.database_url is not None:
        from kitaru_core.store.database import redact

        found.update(store="postgresql", database=redact(settings.database_url))
    else:
        found.update(store="sqlite", database=str(settings.sqlite_path))
    if output is OutputFormat.json:
        print_json(found)
    else:
        print_table(
            None, ["setting", "value"], [(k.replace("_", " "), str(v)) for k, v in found.items()]
        )
    if found.get("answers") is False:
        raise typer.Exit(1)
