"""What keeps ``kitaru serve`` answering when clients are slow, many or hostile.

- Connections: at most ``max_connections`` at once (by default what the process's file
  limit leaves after a reserve for the database, logs and artifacts); one more is
  closed as soon as it is accepted, so the accept loop never runs out of descriptors.
  The soft file limit is raised to the hard one at start.
- Slow requests: a request whose head and body have not arrived within
  ``request_timeout`` seconds of the connection opening (or of the previous response)
  is dropped. Uvicorn's own keep-alive timer stops counting once a byte arrives, so
  half a request line would otherwise hold its connection for ever.
- Code that error handling needs (logging, tracebacks, the source lines a traceback
  reads) is loaded at start: under descriptor exhaustion it could not be imported.

A server that still cannot accept exits non-zero, so that a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import linecache
import resource
import sys
import traceback
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

RESERVED_DESCRIPTORS = 128
"""Descriptors kept back from connections: the database, log files, artifacts."""
BACKLOG = 64
"""Pending connections the kernel queues. The event loop accepts up to this many at a
time before any is closed, so it too is kept back from the cap."""
DEFAULT_REQUEST_TIMEOUT = 10.0


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
    return max(16, file_limit - RESERVED_DESCRIPTORS - BACKLOG)


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


def guarded_protocol(*, max_connections: int, request_timeout: float) -> type[H11Protocol]:
    """Uvicorn's h11 protocol with a connection cap and a deadline for each request."""

    class Guarded(H11Protocol):
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
