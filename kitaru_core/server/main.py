"""Running the server: ``kitaru serve`` (uvicorn, optionally with the worker in the
same process) and ``kitaru mcp`` (the MCP tools over stdio)."""

from __future__ import annotations

import contextlib
import errno
import gc
import ipaddress
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable

import uvicorn

from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime.dispatch import run_in_background
from kitaru_core.server import guard
from kitaru_core.server.app import ServerState, create_app
from kitaru_core.server.catalog import FlowCatalog, configured_sources
from kitaru_core.server.mcp_tools import build_mcp
from kitaru_core.server.service import Service
from kitaru_core.settings import load_settings
from kitaru_core.store.metadata_store import get_store
from kitaru_core.worker.service import Worker


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def catalog_for(flows: list[str]) -> FlowCatalog:
    return FlowCatalog(flows or configured_sources())


def serve(
    *,
    host: str,
    port: int,
    flows: list[str],
    worker: bool,
    concurrency: int,
    insecure_no_auth: bool,
    stack: str | None = None,
    log_level: str = "info",
    access_log: bool = False,
    say: Callable[[str], None] = print,
    request_timeout: float = guard.DEFAULT_REQUEST_TIMEOUT,
    max_connections: int | None = None,
) -> None:
    if insecure_no_auth and not is_loopback(host):
        raise KitaruUsageError(
            f"--insecure-no-auth is accepted only on a loopback address, not {host}: anyone "
            "who reaches it could run flows. Create a token (`kitaru tokens create NAME "
            "--scope admin`) and drop --insecure-no-auth"
        )
    settings = load_settings()
    if settings.server_url is not None:
        raise KitaruUsageError(
            f"this process is logged in to the Kitaru server at {settings.server_url}, "
            "but `kitaru serve` keeps the metadata itself and needs the database: run it "
            "where KITARU_SERVER_URL is unset and no `kitaru login` was made (`kitaru logout`)"
        )
    listener = _listen(host, port)  # before anything is announced or started
    file_limit = guard.raise_file_limit()
    guard.preload_error_paths()
    protocol = guard.guarded_protocol(
        max_connections=max_connections or guard.default_max_connections(file_limit),
        request_timeout=request_timeout,
    )
    store = get_store()
    catalog = catalog_for(flows)
    in_process = _worker(stack, concurrency) if worker else None
    service = Service(store, catalog, in_process.hand_off if in_process else run_in_background)
    state = ServerState(service=service, auth=not insecure_no_auth)
    state.mcp = build_mcp(service)

    @contextlib.asynccontextmanager
    async def run_worker() -> AsyncIterator[None]:
        guard.guard_event_loop()  # the lifespan runs on the server's own loop
        thread = None
        if in_process is not None:
            thread = threading.Thread(
                target=in_process.run_forever, name="kitaru-worker-loop", daemon=True
            )
            thread.start()
        try:
            yield
        finally:
            if in_process is not None and thread is not None:
                in_process.stop()
                thread.join(timeout=30)

    app = create_app(state, lifespan_extra=run_worker)
    # Everything imported and built so far lives as long as the server: keep it out of
    # the garbage collector's full passes, which would otherwise stall every request
    # for the ~150 ms it takes to walk FastAPI's, pydantic's and the MCP SDK's objects.
    gc.collect()
    gc.freeze()
    if not insecure_no_auth and not store.tokens.list():
        say("no API token exists yet: create one with `kitaru tokens create NAME --scope admin`")
    served = ", ".join(f.name for f in catalog) or "none (pass --flows MODULE_OR_FILE)"
    say(
        f"kitaru serve on http://{_netloc(host, port)}: API {'/api/v1'}, MCP /mcp; flows: "
        f"{served}; worker: {'in this process' if in_process else 'off'}"
    )
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=5,
            http=protocol,
            backlog=guard.BACKLOG,
        )
    ).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one clear line before
    the server says it serves, never an error buried in uvicorn's log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP,
    # and without that every response on a kept-alive connection (headers and body
    # written apart) waits 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise KitaruUsageError(
                f"port {port} on {host} is already in use (another `kitaru serve`?): stop "
                "what holds it, or serve on another port with --port"
            ) from None
        raise KitaruUsageError(
            f"cannot listen on {_netloc(host, port)}: {exc.strerror or exc}; choose another "
            "--host or --port"
        ) from None
    sock.listen(guard.BACKLOG)
    sock.set_inheritable(True)
    return sock


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _worker(stack: str | None, concurrency: int) -> Worker:
    log = logging.getLogger("kitaru.worker")
    return Worker(stack=stack, concurrency=concurrency, log=log.info)


def serve_mcp_stdio(flows: list[str]) -> None:
    """``kitaru mcp``: the tools over stdin and stdout, with this user's own access."""
    service = Service(get_store(), catalog_for(flows))
    build_mcp(service).run("stdio")
