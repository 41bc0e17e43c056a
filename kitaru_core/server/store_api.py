"""The metadata store and the artifact store, served to flow processes that hold a token
and not the database's credentials (``kitaru_core/store/http_store.py`` is the other end).

``POST /api/v1/store/CALL`` makes one call of ``wire.CALLS`` on the server's store, when
the token's scope allows it. Calls that record an execution stamp it with the token's
name (``started_by``), whatever the caller sent. Only a bearer token opens these routes:
a browser session's cookie does not, so no page can make a store call on a user's behalf.

``/api/v1/stacks/STACK/blobs/KEY`` holds the artifacts of a stack whose artifact store
is the server's own disk. An upload is streamed to a spooled file while its SHA-256 is
checked against the key it claims (keys are content hashes, so nobody can put other
bytes under someone's key), and capped by ``KITARU_MAX_ARTIFACT_BYTES``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kitaru_core.errors import KitaruError, KitaruNotFoundError
from kitaru_core.runtime import trust
from kitaru_core.server.problems import status_of
from kitaru_core.server.tokens import SCOPES, allows
from kitaru_core.stack_registry import get_stack
from kitaru_core.store import wire
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import TokenRecord

STORE_PATH = "/api/v1/store/"
BLOBS = re.compile(r"/api/v1/stacks/[^/]+/blobs/")
MAX_CALL_BYTES = 32 * 1024 * 1024
"""A store call carries rows and artifacts up to the inline limit (4 KiB each)."""
DEFAULT_MAX_ARTIFACT_BYTES = 1024**3
_KEY = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024
_SPOOL = 8 * 1024 * 1024


def max_artifact_bytes() -> int:
    raw = os.environ.get("KITARU_MAX_ARTIFACT_BYTES", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_ARTIFACT_BYTES


def body_cap(path: str) -> int | None:
    """The body a store or blob route may receive; None for other routes."""
    if path.startswith(STORE_PATH):
        return MAX_CALL_BYTES
    if BLOBS.match(path):
        return max_artifact_bytes()
    return None


def _problem(status: int, title: str, detail: str, kind: str | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if kind:
        body["kitaru_error"] = kind
    return Response(wire.dumps(body), status, media_type="application/problem+json")


def _caller(
    request: Request, auth: bool, needed: str
) -> tuple[TokenRecord | None, Response | None]:
    """The token of the request, or the refusal it gets."""
    if not auth:
        return None, None
    record: TokenRecord | None = request.scope.get("state", {}).get("kitaru_token")
    if record is None or not request.headers.get("authorization"):
        return None, _problem(
            401,
            "Unauthorized",
            "store calls need `Authorization: Bearer TOKEN`; log in with `kitaru login URL`",
        )
    if not allows(record.scope, needed):
        return record, _problem(
            403,
            "Forbidden",
            f"token {record.name!r} has scope {record.scope!r}; recording and running "
            f"executions needs {needed!r} or higher ({' < '.join(SCOPES)}): ask for a "
            f"`kitaru tokens create NAME --scope {needed}` token",
        )
    return record, None


def _target(store: MetadataStore, call: str) -> Any:
    owner: Any = store
    part, _, method = call.rpartition(".")
    if part:
        owner = getattr(store, part)
    return getattr(owner, method)


def store_routes(store: MetadataStore, *, auth: bool) -> list[Route]:
    async def store_call(request: Request) -> Response:
        call = request.path_params["call"]
        needed = wire.CALLS.get(call)
        if needed is None:
            return _problem(404, "Not Found", f"{call!r} is not a store call this server makes")
        token, refused = _caller(request, auth, needed)
        if refused is not None:
            return refused
        try:
            payload = wire.loads(await request.body())
            args, kwargs = list(payload.get("args", [])), dict(payload.get("kwargs", {}))
        except (ValueError, TypeError, AttributeError) as exc:
            return _problem(400, "Bad Request", f"store call {call}: {exc}")
        target = _target(store, call)

        def run() -> Any:
            if call in wire.RECORDING_CALLS and args:
                # Who recorded it, and whether the server's key signed it, are the
                # server's to say, never the caller's.
                record = dataclasses.replace(args[0], started_by=token.name if token else None)
                args[0] = trust.mark_where_signed(record)
            value = target(*args, **kwargs) if callable(target) else target
            return wire.dumps({"result": value})

        try:
            body = await anyio.to_thread.run_sync(run)
        except store.db.integrity_error as exc:
            first = str(exc).splitlines()[0] if str(exc) else "a row with that key exists"
            return _problem(409, "Conflict", first, "StoreIntegrityError")
        except KitaruError as exc:
            status, title = status_of(exc)
            return _problem(status, title, str(exc), type(exc).__name__)
        except TypeError as exc:  # arguments that do not fit the call
            return _problem(400, "Bad Request", f"store call {call}: {exc}")
        return Response(body, media_type="application/json")

    async def blob(request: Request) -> Response:
        key, stack_name = request.path_params["key"], request.path_params["stack"]
        needed = "run" if request.method == "PUT" else "read"
        if request.method in ("DELETE",) or key == "":
            needed = "admin"
        _, refused = _caller(request, auth, needed)
        if refused is not None:
            return refused
        if key and not _KEY.fullmatch(key):
            return _problem(400, "Bad Request", f"{key!r} is not an artifact key (a sha256)")
        try:
            artifacts = (await anyio.to_thread.run_sync(get_stack, stack_name)).artifact_store
        except KitaruError as exc:
            status, title = status_of(exc)
            return _problem(status, title, str(exc), type(exc).__name__)
        if request.method == "PUT":
            return await _put(request, store, artifacts, key)
        if request.method == "DELETE":
            await anyio.to_thread.run_sync(artifacts.delete, key)
            return Response(status_code=204)
        if not key:
            prefix = request.query_params.get("prefix", "")
            keys = await anyio.to_thread.run_sync(lambda: list(artifacts.list(prefix)))
            return Response(wire.dumps(keys), media_type="application/json")
        if request.method == "HEAD":
            found = await anyio.to_thread.run_sync(artifacts.exists, key)
            return Response(status_code=200 if found else 404)
        try:
            stream = await anyio.to_thread.run_sync(artifacts.open, key)
        except FileNotFoundError:
            error = KitaruNotFoundError(f"no artifact {key} in stack {stack_name!r}")
            return _problem(404, "Not Found", str(error), type(error).__name__)

        async def chunks() -> Any:
            try:
                while chunk := await anyio.to_thread.run_sync(stream.read, _CHUNK):
                    yield chunk
            finally:
                stream.close()

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return [
        Route(STORE_PATH + "{call}", store_call, methods=["POST"]),
        Route(
            "/api/v1/stacks/{stack}/blobs/{key:path}",
            blob,
            methods=["GET", "HEAD", "PUT", "DELETE"],
        ),
    ]


async def _put(request: Request, store: MetadataStore, artifacts: Any, key: str) -> Response:
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(_SPOOL) as spool:
        async for chunk in request.stream():
            digest.update(chunk)
            spool.write(chunk)
        if digest.hexdigest() != key:
            return _problem(
                400,
                "Bad Request",
                f"the uploaded bytes hash to {digest.hexdigest()}, not to the key {key} "
                "they were sent under; nothing was stored",
            )
        spool.seek(0)

        def put() -> None:
            # Noted first, as the runtime does: retention keeps a blob whose row is on
            # its way (``retention.note_blob_write``).
            store.retention.note_blob_write(key)
            artifacts.put(key, spool)

        try:
            await anyio.to_thread.run_sync(put)
        except KitaruError as exc:
            status, title = status_of(exc)
            return _problem(status, title, str(exc), type(exc).__name__)
    return Response(status_code=204)
