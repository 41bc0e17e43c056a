"""The first thing every request meets: its token, and how much body it may send.

An ASGI middleware that runs before routing, so that nothing reads a body before the
caller is known and the body's size is allowed: a request without a valid token gets
401 without a byte of its body read, one whose ``Content-Length`` is over the route's
cap gets 413 at once, and a chunked body is counted as it arrives. Failed
authentications are logged (never the token) and, from a client that keeps failing,
answered slower.

Routes that need no token: ``/healthz``, the web UI's page and assets, its sign-in
(whose body carries the token, so its cap is small), and the OpenAPI document. The
scope a route needs is still checked by the route (``app.scoped``), with the token
this middleware verified.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from kitaru_core.server.store_api import STORE_PATH
from kitaru_core.server.store_api import body_cap as store_body_cap
from kitaru_core.server.tokens import TokenChecker, TokenRefused
from kitaru_core.server.ui import SESSION_COOKIE
from kitaru_core.untrusted import limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API = "/api/v1"
PUBLIC = frozenset({"/healthz", f"{API}/openapi.json", "/ui/session"})
SMALL_BODY = 16 * 1024
"""Sign-in and token creation carry a few names, never a value."""
FRAMING = 64 * 1024
"""What a request adds around one value (its JSON keys, a wait's name)."""
FAILURES_BEFORE_SLOWING = 10
FAILURE_WINDOW = 60.0
MAX_DELAY = 2.0
TRACKED_CLIENTS = 4096

log = logging.getLogger("kitaru.server.auth")


class Gate:
    def __init__(self, app: ASGIApp, checker: TokenChecker, *, auth: bool) -> None:
        self.app = app
        self.checker = checker
        self.recent = checker.recent
        self.auth = auth
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        headers = _headers(scope)
        cap = body_cap(path, method)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            await _problem(send, 413, "Content Too Large", _too_large(cap))
            return
        if self.auth and _needs_token(path):
            why = await self._authenticate(scope, headers)
            if why is not None:
                await _problem(send, 401, "Unauthorized", why, challenge=True)
                return
        started = refused = False
        received = 0

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap and not refused:
                    # Answered here and now: the route sees a client that went away
                    # (a framework may turn a read error into a 400 of its own).
                    refused = True
                    if not started:
                        await _problem(send, 413, "Content Too Large", _too_large(cap))
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *_protective(path)]
            await send(message)

        await self.app(scope, counted_receive, watched_send)

    async def _authenticate(self, scope: Scope, headers: dict[str, str]) -> str | None:
        """None when the request carries a valid token (kept for the route's scope
        check), else why not."""
        authorization = headers.get("authorization", "")
        presented = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        if presented is None:
            presented = _cookies(headers).get(SESSION_COOKIE)
        # Only a flow process's store calls, many a second, take a token verified a
        # moment ago on trust; every other request is checked against the store.
        hot = scope["path"].startswith(STORE_PATH)
        record = self.recent.get(presented) if hot else None
        try:
            # In a thread: the lookup reads the database, which may be slow or
            # restarting, and the event loop serves every other request meanwhile.
            if record is None:
                record = await anyio.to_thread.run_sync(self.checker.verify, presented)
        except TokenRefused as exc:
            await self._failed(scope, str(exc))
            return str(exc)
        scope.setdefault("state", {})["kitaru_token"] = record
        return None

    async def _failed(self, scope: Scope, reason: str) -> None:
        client = (scope.get("client") or ("unknown", 0))[0]
        now = time.monotonic()
        recent = self._failures.pop(client, None) or collections.deque()
        while recent and now - recent[0] > FAILURE_WINDOW:
            recent.popleft()
        recent.append(now)
        self._failures[client] = recent
        while len(self._failures) > TRACKED_CLIENTS:
            self._failures.popitem(last=False)
        log.warning(
            "refused authentication from %s (%d in the last %g s) on %s %s: %s",
            client,
            len(recent),
            FAILURE_WINDOW,
            scope["method"],
            scope["path"],
            reason,
        )
        excess = len(recent) - FAILURES_BEFORE_SLOWING
        if excess > 0:
            await asyncio.sleep(min(MAX_DELAY, 0.1 * excess))


def body_cap(path: str, method: str) -> int:
    """The most body a request to ``path`` may send, in bytes."""
    if path == "/ui/session" or (path == f"{API}/tokens" and method == "POST"):
        return SMALL_BODY
    store_cap = store_body_cap(path)
    if store_cap is not None:
        return store_cap
    return limits()[0] + FRAMING


def _protective(path: str) -> list[tuple[bytes, bytes]]:
    """Headers on every response: no content sniffing; and API responses, which are
    data, never a document a browser should render with this origin's rights."""
    headers = [(b"x-content-type-options", b"nosniff")]
    if path.startswith(f"{API}/") or path == "/metrics":
        headers.append((b"content-security-policy", b"default-src 'none'; sandbox"))
    return headers


def _needs_token(path: str) -> bool:
    if path in PUBLIC:
        return False
    return path.startswith(f"{API}/") or path in ("/metrics", "/mcp")


def _too_large(cap: int) -> str:
    return (
        f"the request body is over the limit of {cap:,} bytes for this route; send less "
        "(values are capped by KITARU_MAX_INPUT_BYTES)"
    )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    found = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = value
    return found


async def _problem(
    send: Send, status: int, title: str, detail: str, challenge: bool = False
) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"connection", b"close"),
    ]
    if challenge:
        headers.append((b"www-authenticate", b'Bearer realm="kitaru"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})
