"""The metadata store through ``kitaru serve``: what a process uses when it is logged in
to a server (``kitaru login``, or ``KITARU_SERVER_URL``) instead of holding the
database's credentials.

It answers the calls of :class:`~kitaru_core.store.metadata_store.MetadataStore` that
``wire.CALLS`` lists, each one request to ``POST /api/v1/store/CALL`` with the token,
so the runtime above it does not know which store it has. A checkpoint is one request:
its journal entry, with its artifact rows and small artifacts inline, is one call.

Requests go over the standard library's ``http.client`` with one kept-alive connection
per thread: a call costs a loopback round trip and little more, where a general HTTP
client adds hundreds of microseconds. A server that cannot be reached is tried again
for up to a minute (a restart, a rolling deploy); a request that reached the server
and got no answer is not repeated, since it may have been applied, and fails the call.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from kitaru_core import errors
from kitaru_core.errors import KitaruBackendError, KitaruError, KitaruUsageError
from kitaru_core.store import wire
from kitaru_core.store.records import ExecutionRecord

PATIENCE = 60.0
"""Seconds a call waits for a server that answered this process before and now refuses
connections (a restart), before it fails."""
_TIMEOUT = 120.0
_IDLE = 4.0
"""A connection idle longer than this is not reused: uvicorn closes idle connections
after 5 s, and a request sent on one it is closing would be lost in flight."""
_ERRORS: dict[str, type[KitaruError]] = {
    cls.__name__: cls
    for cls in (
        errors.KitaruUsageError,
        errors.KitaruNotFoundError,
        errors.KitaruUntrustedError,
        errors.KitaruStateError,
        errors.KitaruLeaseLost,
        errors.KitaruStackError,
        errors.KitaruBackendError,
        errors.KitaruDatabaseUnavailable,
    )
}
"""Errors a store call raises on the server that are raised as themselves here."""


class StoreIntegrityError(KitaruError):
    """A row the call would insert exists (a repeated id): what the database's own
    integrity error is to a store it holds."""


class _Database:
    """What the runtime reads of a store's database, for a store that has none."""

    dialect = "http"
    integrity_error = StoreIntegrityError

    def __init__(self, url: str) -> None:
        self.url = url

    def close(self) -> None:
        pass


class ServerTransport:
    """Requests to one server with one token; a kept-alive connection per thread."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise KitaruUsageError(
                f"server URL {url!r} is not an http:// or https:// address; log in with "
                "`kitaru login https://kitaru.example.com`"
            )
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()
        self._answered = False
        """Whether the server has answered this process: from then on a refused
        connection is a restart to wait out; before, a wrong address to say at once."""

    def _connection(self) -> http.client.HTTPConnection:
        kept = getattr(self._local, "connection", None)
        if kept is not None and time.monotonic() - self._local.used < _IDLE:
            return kept
        if kept is not None:
            kept.close()
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = cls(self._host, self._port, timeout=_TIMEOUT)
        self._local.connection = connection
        return connection

    def _drop(self) -> None:
        kept = getattr(self._local, "connection", None)
        if kept is not None:
            kept.close()
            self._local.connection = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of a request to ``path`` under the server's URL."""
        deadline = time.monotonic() + PATIENCE
        delay = 0.1
        sent_headers = {**self._headers, **(headers or {})}
        while True:
            connection = self._connection()
            try:
                if connection.sock is None:
                    connection.connect()  # refused here: nothing was sent, try again
                connection.request(method, self._prefix + path, body, sent_headers)
                response = connection.getresponse()
                data = response.read()
            except (ConnectionRefusedError, socket.gaierror) as exc:
                self._drop()
                if not self._answered or time.monotonic() + delay > deadline:
                    raise self._unreachable(exc) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise self._unreachable(exc) from None
            self._local.used = time.monotonic()
            self._answered = True
            if response.will_close:
                self._drop()
            return response.status, data, dict(response.getheaders())

    def _unreachable(self, exc: BaseException) -> KitaruBackendError:
        return KitaruBackendError(
            f"the Kitaru server at {self.url} did not answer ({type(exc).__name__}: {exc}); "
            "check that `kitaru serve` runs there, and the address (KITARU_SERVER_URL, or "
            "`kitaru login`; `kitaru status` says which this process uses)"
        )

    def close(self) -> None:
        self._drop()


def refusal(status: int, data: bytes, what: str) -> KitaruError:
    """The error a refused request stands for, with the server's one-line reason."""
    try:
        problem = wire.loads(data)
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or data[:200].decode(errors="replace") or status)
    kind = problem.get("kitaru_error")
    if kind == StoreIntegrityError.__name__:
        return StoreIntegrityError(detail)
    if kind in _ERRORS:
        return _ERRORS[kind](detail)
    if status in (401, 403):
        return KitaruUsageError(f"the Kitaru server refused {what} ({status}): {detail}")
    return KitaruBackendError(f"the Kitaru server could not do {what} ({status}): {detail}")


def _remote(owner: Any, store: HttpMetadataStore, call: str, method: str) -> Any:
    """``owner.method`` as a store call on the server (kept on ``owner`` once made)."""
    if call not in wire.CALLS:
        raise AttributeError(f"store.{call} is not available through the Kitaru server")

    def remote(*args: Any, **kwargs: Any) -> Any:
        return store.call(call, args, kwargs)

    setattr(owner, method, remote)
    return remote


class _Part:
    """``store.waits``, ``store.memory``, ...: their calls, made on the server."""

    def __init__(self, store: HttpMetadataStore, name: str) -> None:
        self._store = store
        self._name = name

    def __getattr__(self, method: str) -> Any:
        return _remote(self, self._store, f"{self._name}.{method}", method)


class _Queues(_Part):
    def admit(
        self,
        queue: str,
        at_most: int | None = None,
        accepts: Callable[[ExecutionRecord], bool] | None = None,
    ) -> list[ExecutionRecord]:
        """A worker's filter cannot cross HTTP: it is applied here to the queue's
        oldest, and the server admits only the ids it took."""
        only = None
        if accepts is not None:
            only = [r.id for r in self._store.call("queues.queued", (queue,), {}) if accepts(r)]
        admitted: list[ExecutionRecord] = self._store.call(
            "queues.admit", (queue, at_most), {"only": only}
        )
        return admitted


class HttpMetadataStore:
    """A metadata store whose rows live behind ``kitaru serve``."""

    PARTS = (
        *("waits", "memory", "stacks", "queues", "schedules"),
        *("workers", "retention", "events", "deaths", "output"),
    )

    def __init__(self, url: str, token: str | None) -> None:
        self.transport = ServerTransport(url, token)
        self.db = _Database(self.transport.url)
        self.unsigned_references = False
        for part in self.PARTS:
            setattr(self, part, _Queues(self, part) if part == "queues" else _Part(self, part))
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = str(self.call("identity", (), {}))
        return self._identity

    @property
    def tokens(self) -> Any:
        raise KitaruUsageError(
            "tokens are managed where the server's database is: run `kitaru tokens` "
            "there, or use the API's /api/v1/tokens with an admin token"
        )

    def load_journal(self, exec_id: str) -> dict[int, Any]:
        # JSON object keys are text; journal positions are numbers.
        entries = self.call("load_journal", (exec_id,), {})
        return {int(position): entry for position, entry in entries.items()}

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        body = wire.dumps({"args": args, "kwargs": kwargs})
        status, data, _ = self.transport.request("POST", f"/api/v1/store/{name}", body)
        if status != 200:
            raise refusal(status, data, f"store call {name}")
        return wire.loads(data)["result"]

    def __getattr__(self, method: str) -> Any:
        return _remote(self, self, method, method)
