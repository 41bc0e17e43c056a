"""What keeps ``kitaru serve`` answering when clients are slow, many or hostile.

- Connections: at most ``max_connections`` at once (by default what the process's file
  limit leaves after a reserve for the database, logs and artifacts, and for the
  connections the event loop accepts before the cap sees them); one more is closed as
  soon as it is accepted, so the accept loop does not run out of descriptors. The soft
  file limit is raised to the hard one at start.
- Slow requests: a request whose head and body have not arrived within
  ``request_timeout`` seconds of the connection opening (or of the previous response)
  is dropped. Uvicorn's own keep-alive timer stops counting once a byte arrives, so
  half a request line would otherwise hold its connection for ever.
- Running out of descriptors anyway (a lower ``--max-connections`` was not given, or
  the database took more) is survived: asyncio stops accepting for a second and tries
  again. The loop's error handler says so in one line and never raises: a handler that
  fails (a traceback renderer that imports a module needs a descriptor too) would stop
  the event loop, and with it the server.
- Code that error handling needs (logging, tracebacks, the source lines a traceback
  reads) is loaded at start: under descriptor exhaustion it could not be imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import linecache
import logging
import os
import resource
import sys
import traceback
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

RESERVED_DESCRIPTORS = 128
"""Descriptors kept back from connections: the database (two for each thread's SQLite
connection), log files, artifacts."""
BACKLOG = 64
"""Pending connections the kernel queues. The event loop accepts up to this many each
time the listening socket is ready, and a connection reaches the cap's check only two
turns of the loop later (its transport is built in a task, which then schedules
``connection_made``), so three batches are kept back from the cap."""
IN_FLIGHT_ACCEPTS = 3 * BACKLOG
DEFAULT_REQUEST_TIMEOUT = 10.0
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
log = logging.getLogger("kitaru.server")


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def default_max_connections(file_limit: int) -> int:
    return max(16, file_limit - RESERVED_DESCRIPTORS - IN_FLIGHT_ACCEPTS)


class LoopErrors:
    """The event loop's error handler: asyncio's own, except that running out of
    descriptors is one line (at most one a second) and nothing it does can raise."""

    def __init__(self) -> None:
        self._last_said = 0.0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        try:
            if isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS:
                if loop.time() - self._last_said >= 1.0:
                    self._last_said = loop.time()
                    log.warning(
                        "out of file descriptors (%s): not accepting connections for a "
                        "second; lower --max-connections or raise the file limit",
                        exc.strerror,
                    )
                return
            loop.default_exception_handler(context)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # raising from here would stop the event loop
            message = f"kitaru serve: {context.get('message', 'error')}: {exc!r}\n"
            with contextlib.suppress(OSError):
                os.write(2, message.encode(errors="replace"))


def guard_event_loop() -> None:
    """Install :class:`LoopErrors` on the running loop."""
    asyncio.get_running_loop().set_exception_handler(LoopErrors())


def preload_error_paths() -> None:
    """Import and warm what logging an error needs, while files can still be opened."""
    import logging.handlers
    import traceback as _traceback  # noqa: F401

    logging.getLogger("uvicorn.error")
    for module in (asyncio.base_events, asyncio.selector_events, sys.modules[__name__]):
        path = getattr(module, "__file__", None)
        if path:
            linecache.getlines(path)
    try:
        raise OSError("warm-up")
    except OSError:
        traceback.format_exc()


def guarded_protocol(*, max_connections: int, request_timeout: float) -> type[HttpToolsProtocol]:
    """Uvicorn's httptools protocol (a C parser: a fraction of h11's cost per request) with a connection cap and a deadline for each request."""

    class Guarded(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()  # over the cap: this descriptor is freed at once
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(request_timeout, self._check)

        def _check(self) -> None:
            """Drop the connection if it is still receiving a request; a request
            being answered (a stream, a held ``?wait=``) is let run."""
            cycle = self.cycle
            receiving = (
                cycle is None
                or cycle.response_complete
                or (cycle.more_body and not cycle.response_started)
            )
            if self.transport.is_closing():
                return
            if receiving:
                self.transport.abort()
            else:
                self._arm()

    return Guarded
