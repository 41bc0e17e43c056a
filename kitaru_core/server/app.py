"""The HTTP API under ``/api/v1``, ``/healthz``, ``/metrics`` and MCP at ``/mcp``.

Every route names the scope it needs; errors are problem details
(``application/problem+json``) whose ``detail`` is the same one-line message the CLI
prints. Routes that touch the store are plain functions, which FastAPI runs in its
thread pool; only the event streams and ``?wait=`` are async.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from kitaru_core import __version__
from kitaru_core.errors import KitaruError
from kitaru_core.server import metrics
from kitaru_core.server.events import EventHub, parse_last_event_id
from kitaru_core.server.gate import Gate
from kitaru_core.server.mcp_tools import mount_mcp
from kitaru_core.server.problems import (
    ERROR_RESPONSES,
    Problem,
    ProblemDetails,
    problem_response,
    status_of,
)
from kitaru_core.server.service import Service
from kitaru_core.server.store_api import store_routes
from kitaru_core.server.tokens import (
    SCOPES,
    TokenChecker,
    TokenRefused,
    allows,
    check_scope,
    create_token,
    revoke_token,
)
from kitaru_core.server.ui import CSRF_HEADER, SESSION_COOKIE, csrf_token, ui_router
from kitaru_core.server.views import token_json
from kitaru_core.store.records import Status, TokenRecord

API = "/api/v1"
MAX_WAIT_SECONDS = 300.0


# -- request bodies ----------------------------------------------------------------------


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    args: dict[str, Any] = Field(default_factory=dict, description="the flow's arguments")


class InputBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait: str | None = Field(None, description="the wait's name; optional when one is pending")
    value: Any = Field(None, description="JSON that fits the wait's schema (required)")
    abort: bool = Field(False, description="refuse instead: the execution ends cancelled")


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str | int = Field(..., alias="from", description="checkpoint name or position")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description='"checkpoint.NAME" to the value it returns instead'
    )
    args: dict[str, Any] = Field(default_factory=dict, description="replaced flow inputs")


class MemoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any = Field(..., description="plain JSON data")
    expected_version: int | None = Field(
        None, description="compare-and-set: the version you read (0: the key must not exist)"
    )


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    scope: str = Field(..., description=" | ".join(SCOPES))
    expires_in_seconds: float | None = Field(None, gt=0)


# -- the app -----------------------------------------------------------------------------


@dataclass
class ServerState:
    service: Service
    auth: bool = True
    """False only with --insecure-no-auth on a loopback address."""
    hub: EventHub | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    mcp: Any = None


Scope = Callable[..., str]


def create_app(state: ServerState, *, lifespan_extra: Any = None) -> FastAPI:
    checker = TokenChecker(state.service.store)
    scraped = metrics.Metrics(state.service.store)
    state.hub = state.hub or EventHub(state.service.store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert state.hub is not None
        state.background.append(asyncio.create_task(state.hub.watch()))
        async with contextlib.AsyncExitStack() as stack:
            if state.mcp is not None:
                await stack.enter_async_context(state.mcp.session_manager.run())
            if lifespan_extra is not None:
                await stack.enter_async_context(lifespan_extra())
            yield
        for task in state.background:
            task.cancel()

    app = FastAPI(
        title="Kitaru",
        version=__version__,
        description="Start flows, answer waits, follow executions. Every request but "
        "/healthz carries `Authorization: Bearer TOKEN` (`kitaru tokens create`).",
        openapi_url=f"{API}/openapi.json",
        docs_url=None,  # no page that loads scripts from elsewhere on the cookie's origin
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.kitaru = state

    def scoped(needed: str) -> Any:
        # Async: the gate (kitaru_core/server/gate.py) has verified the token already, in
        # a thread; what is left here is comparing scopes.
        async def check(
            request: Request, authorization: Annotated[str | None, Header()] = None
        ) -> str:
            if not state.auth:
                return "admin"
            bearer = None
            if authorization and authorization[:7].lower() == "bearer ":
                bearer = authorization[7:].strip()
            from_cookie = bearer is None and SESSION_COOKIE in request.cookies
            if from_cookie:  # the web UI's session
                bearer = request.cookies[SESSION_COOKIE]
            # The gate (kitaru_core/server/gate.py) verified it before any body was read.
            record: TokenRecord | None = getattr(request.state, "kitaru_token", None)
            if record is None:
                try:
                    record = await anyio.to_thread.run_sync(checker.verify, bearer)
                except TokenRefused as exc:
                    raise Problem(401, "Unauthorized", str(exc)) from None
            if from_cookie and request.method not in ("GET", "HEAD"):
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent, csrf_token(bearer or "")):
                    raise Problem(
                        403,
                        "Forbidden",
                        f"a request made with the session cookie needs the {CSRF_HEADER} "
                        "header of that session; reload the page",
                    )
            if not allows(record.scope, needed):
                raise Problem(
                    403,
                    "Forbidden",
                    f"token {record.name!r} has scope {record.scope!r}; this needs "
                    f"{needed!r} or higher ({' < '.join(SCOPES)})",
                )
            return record.scope

        return Depends(check)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail)

    @app.exception_handler(KitaruError)
    async def _kitaru(request: Request, exc: KitaruError) -> JSONResponse:
        status, title = status_of(exc)
        return problem_response(status, title, str(exc).splitlines()[0])

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem_response(422, "Unprocessable Content", f"{where}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), str(exc.detail))

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        """Whether the server and its database answer (no token needed)."""
        state.service.store.events.latest_id()
        return {"status": "ok", "version": __version__}

    @app.get(
        "/metrics",
        tags=["server"],
        response_class=PlainTextResponse,
        responses={401: ERROR_RESPONSES[401], 403: ERROR_RESPONSES[403]},
    )
    def get_metrics(_: str = scoped("read")) -> Response:
        """Prometheus text: executions by status, step durations, LLM use, worker lag."""
        return Response(scraped.render(), media_type=metrics.CONTENT_TYPE)

    api = APIRouter(prefix=API, responses=ERROR_RESPONSES)
    service = state.service

    @api.get("/whoami", tags=["server"])
    def whoami(request: Request, scope: str = scoped("read")) -> dict[str, Any]:
        """The token the request carries (its name and scope) and the server's version:
        what ``kitaru login`` checks and ``kitaru status`` shows."""
        token: TokenRecord | None = getattr(request.state, "kitaru_token", None)
        name = token.name if token else None
        return {"token": name, "scope": scope, "version": __version__}

    # -- flows -------------------------------------------------------------------------

    @api.get("/flows", tags=["flows"])
    def list_flows(_: str = scoped("read")) -> list[dict[str, Any]]:
        """The flows this server may start, with their parameters' JSON schemas."""
        return service.flows()

    @api.post(
        "/flows/{name}/executions",
        tags=["flows"],
        status_code=201,
        responses={200: {"description": "The execution that this Idempotency-Key started"}},
    )
    async def start_flow(
        request: Request,
        response: Response,
        name: Annotated[str, Path(description="the flow's name")],
        body: Annotated[StartBody, Body()] = StartBody(),
        idempotency_key: Annotated[
            str | None,
            Header(description="becomes the execution's id: a repeat starts nothing"),
        ] = None,
        wait: Annotated[
            float | None,
            Query(ge=0, le=MAX_WAIT_SECONDS, description="hold until it ends or waits"),
        ] = None,
        _: str = scoped("run"),
    ) -> dict[str, Any]:
        """Start an execution; 201 when new, 200 when the Idempotency-Key exists."""
        token: TokenRecord | None = getattr(request.state, "kitaru_token", None)
        started_by = token.name if token else None
        execution, new = await anyio.to_thread.run_sync(
            lambda: service.start(name, body.args, exec_id=idempotency_key, started_by=started_by)
        )
        response.status_code = 201 if new else 200
        if wait:
            return await _held(execution["exec_id"], wait)
        return execution

    async def _held(exec_id: str, seconds: float) -> dict[str, Any]:
        """The execution once it is no longer queued or running, or after ``seconds``."""
        deadline = time.monotonic() + seconds
        delay = 0.005
        while True:
            status, _ = await anyio.to_thread.run_sync(service.status, exec_id)
            if status not in (Status.QUEUED, Status.RUNNING) or time.monotonic() >= deadline:
                return await anyio.to_thread.run_sync(service.execution, exec_id)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.25)

    # -- executions --------------------------------------------------------------------

    @api.get("/executions", tags=["executions"])
    def list_executions(
        response: Response,
        status: str | None = Query(None, description=", ".join(Status)),
        flow: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        cursor: str | None = Query(None, description="the previous page's X-Next-Cursor"),
        view: Literal["full", "summary"] = Query(
            "full", description="summary: one row each (steps, LLM tokens and cost)"
        ),
        stack: str | None = Query(None, description="summary view: only this stack's"),
        since: float | None = Query(None, description="summary view: created at or after"),
        until: float | None = Query(None, description="summary view: created before"),
        q: str | None = Query(
            None,
            description="summary view: ids starting with this, and flows or wait "
            "questions holding it (any case)",
        ),
        flow_contains: str | None = Query(None, description="summary view: flows holding this"),
        parent: str | None = Query(None, description="only the child flows of this execution"),
        code_version: str | None = Query(None, description="only executions of this code"),
        _: str = scoped("read"),
    ) -> list[dict[str, Any]]:
        """Executions, newest first; the next page's cursor is in X-Next-Cursor."""
        if view == "summary":
            page, following, total = service.summaries(
                status=status,
                flow=flow,
                stack=stack,
                since=since,
                until=until,
                search=q,
                flow_contains=flow_contains,
                limit=limit,
                cursor=cursor,
            )
            response.headers["X-Total-Count"] = str(total)
        else:
            page, following = service.list_executions(
                status=status,
                flow=flow,
                limit=limit,
                cursor=cursor,
                parent=parent,
                code_version=code_version,
            )
        if following:
            response.headers["X-Next-Cursor"] = following
            response.headers["Link"] = f'<{API}/executions?cursor={following}>; rel="next"'
        return page

    @api.get("/executions/{exec_id}", tags=["executions"])
    def get_execution(exec_id: str, _: str = scoped("read")) -> dict[str, Any]:
        """Checkpoints, the pending wait with its schema, LLM calls, result, error."""
        return service.execution(exec_id)

    @api.get("/executions/{exec_id}/logs", tags=["executions"], response_class=PlainTextResponse)
    def get_logs(
        exec_id: str,
        tail: Annotated[
            int | None, Query(ge=0, description="only the last lines of each part")
        ] = None,
        _: str = scoped("read"),
    ) -> str:
        return service.logs(exec_id, tail)

    @api.post("/executions/{exec_id}/input", tags=["waits"])
    def give_input(exec_id: str, body: InputBody, _: str = scoped("input")) -> dict[str, Any]:
        """Answer a wait (422 if the value does not fit, 409 if the execution ended or
        the wait was answered; nothing is stored then). The execution resumes."""
        if body.abort:
            return service.abort_wait(exec_id, body.wait)
        if "value" not in body.model_fields_set:
            raise Problem(422, "Unprocessable Content", 'body: give "value" (or "abort": true)')
        return service.give_input(exec_id, body.wait, body.value)

    @api.post("/executions/{exec_id}/cancel", tags=["executions"])
    def cancel(exec_id: str, _: str = scoped("run")) -> dict[str, Any]:
        return service.cancel(exec_id)

    @api.post("/executions/{exec_id}/retry", tags=["executions"])
    def retry(exec_id: str, _: str = scoped("run")) -> dict[str, Any]:
        """Run a failed or cancelled execution again from its last completed step."""
        return service.retry(exec_id)

    @api.post("/executions/{exec_id}/resume", tags=["executions"])
    def resume(exec_id: str, _: str = scoped("run")) -> dict[str, Any]:
        return service.resume(exec_id)

    @api.post("/executions/{exec_id}/replay", tags=["executions"], status_code=201)
    def replay(exec_id: str, body: ReplayBody, _: str = scoped("run")) -> dict[str, Any]:
        """A new execution reusing this one's steps before ``from``."""
        return service.replay(exec_id, from_=body.from_, overrides=body.overrides, args=body.args)

    @api.get("/diff", tags=["executions"])
    def get_diff(a: str, b: str, _: str = scoped("read")) -> dict[str, Any]:
        """Two executions compared step by step."""
        return service.diff(a, b)

    @api.get("/waits", tags=["waits"])
    def pending_waits(
        response: Response,
        exec_id: str | None = Query(None, description="only this execution's"),
        limit: int | None = Query(None, ge=1, le=500, description="a page of this many"),
        cursor: str | None = Query(None, description="X-Next-Cursor of the previous page"),
        flow: str | None = Query(None, description="only waits of this flow's executions"),
        name: str | None = Query(None, description="only waits of this name"),
        metadata: str | None = Query(
            None, description="KEY=VALUE: only waits whose metadata holds it (as text)"
        ),
        _: str = scoped("read"),
    ) -> list[dict[str, Any]]:
        """Waits nobody has answered yet, oldest first, with their questions and JSON
        schemas; with ``limit``, a page (``X-Next-Cursor`` gives the next)."""
        if limit is None and cursor is None and flow is None and name is None and not metadata:
            return service.pending_waits(exec_id)
        page, following = service.waits_page(
            limit=limit or 50, cursor=cursor, flow=flow, name=name, metadata=metadata
        )
        if following:
            response.headers["X-Next-Cursor"] = following
        return page

    @api.get("/waits/count", tags=["waits"])
    def count_waits(_: str = scoped("read")) -> dict[str, int]:
        """How many waits nobody has answered: the inbox's badge, without the list."""
        return {"pending": service.store.waits.count_pending()}

    # -- artifacts ---------------------------------------------------------------------

    @api.get("/executions/{exec_id}/artifacts", tags=["artifacts"])
    def list_artifacts(exec_id: str, _: str = scoped("read")) -> list[dict[str, Any]]:
        return service.artifacts(exec_id)

    @api.get("/artifacts/{artifact_id}/metadata", tags=["artifacts"])
    def get_artifact_metadata(artifact_id: str, _: str = scoped("read")) -> dict[str, Any]:
        """Name, type, serializer, size and where the artifact is stored."""
        return service.artifact_metadata(artifact_id)

    @api.get(
        "/artifacts/{artifact_id}",
        tags=["artifacts"],
        responses={
            200: {
                "description": "JSON for typed values; the bytes for binary ones",
                "content": {"application/json": {}, "application/octet-stream": {}},
            }
        },
    )
    def get_artifact(artifact_id: str, _: str = scoped("read")) -> Response:
        """A typed value as JSON, a binary one as its bytes; pickles are never sent."""
        content = service.artifact(artifact_id)
        headers = {"X-Kitaru-Serializer": content.record.serializer}
        if content.stream is not None:  # bytes: saved, never rendered on this origin
            headers["Content-Disposition"] = attachment(content.record.name)
            return StreamingResponse(
                iter(content.stream), media_type=content.media_type, headers=headers
            )
        return JSONResponse(content.value, headers=headers)

    # -- memory ------------------------------------------------------------------------

    @api.get("/memory", tags=["memory"])
    def memory_scopes(_: str = scoped("read")) -> list[dict[str, str]]:
        """Every scope that holds a key."""
        return service.memory_scopes()

    @api.get("/memory/{scope_type}/{scope}", tags=["memory"])
    def memory_list(
        scope_type: str, scope: str, prefix: str | None = None, _: str = scoped("read")
    ) -> list[dict[str, Any]]:
        """The newest version of every key of the scope (deleted keys included)."""
        return service.memory_list(scope_type, scope, prefix)

    @api.get("/memory/{scope_type}/{scope}/{key:path}", tags=["memory"])
    def memory_get(
        scope_type: str,
        scope: str,
        key: str,
        version: int | None = Query(None, ge=1),
        history: bool = Query(False, description="every version, newest first"),
        _: str = scoped("read"),
    ) -> Any:
        if history:
            return service.memory_history(scope_type, scope, key)
        return service.memory_get(scope_type, scope, key, version)

    @api.put("/memory/{scope_type}/{scope}/{key:path}", tags=["memory"])
    def memory_put(
        scope_type: str, scope: str, key: str, body: MemoryBody, _: str = scoped("admin")
    ) -> dict[str, Any]:
        """Write a new version (compare-and-set with ``expected_version``)."""
        return service.memory_set(scope_type, scope, key, body.value, body.expected_version)

    @api.delete("/memory/{scope_type}/{scope}/{key:path}", tags=["memory"])
    def memory_delete(
        scope_type: str, scope: str, key: str, _: str = scoped("admin")
    ) -> dict[str, Any]:
        """Delete the key: a tombstone version; earlier versions stay readable."""
        return service.memory_delete(scope_type, scope, key)

    # -- stacks, plugins, schedules ----------------------------------------------------

    @api.get("/stacks", tags=["stacks"])
    def list_stacks(_: str = scoped("read")) -> list[dict[str, Any]]:
        """Every stack, its components' flavors and config (secrets masked)."""
        return service.stacks()

    @api.get("/plugins", tags=["stacks"])
    def list_plugins(_: str = scoped("read")) -> list[dict[str, Any]]:
        """Installed plugins, their flavors, and why one failed to load."""
        return service.plugins()

    @api.get("/schedules", tags=["schedules"])
    def list_schedules(_: str = scoped("read")) -> list[dict[str, Any]]:
        """Every schedule with its next five firings."""
        return service.schedules()

    @api.post("/schedules/{name}/{action}", tags=["schedules"])
    def steer_schedule(
        name: str, action: Literal["pause", "resume"], _: str = scoped("admin")
    ) -> dict[str, Any]:
        """Pause a schedule, or resume it from its next slot."""
        return service.schedule(name, action)

    # -- tokens ------------------------------------------------------------------------

    @api.get("/tokens", tags=["tokens"])
    def list_tokens(_: str = scoped("admin")) -> list[dict[str, Any]]:
        return [token_json(t) for t in service.store.tokens.list()]

    @api.post("/tokens", tags=["tokens"], status_code=201)
    def new_token(body: TokenBody, _: str = scoped("admin")) -> dict[str, Any]:
        """A new token; the response is the only place its secret appears."""
        made = create_token(
            service.store, body.name, check_scope(body.scope), expires_in=body.expires_in_seconds
        )
        return {**token_json(made.record), "token": made.token}

    @api.delete("/tokens/{name}", tags=["tokens"])
    def revoke_by_name(name: str, _: str = scoped("admin")) -> dict[str, Any]:
        return token_json(revoke_token(service.store, name))

    # -- events ------------------------------------------------------------------------

    _sse: dict[int | str, dict[str, Any]] = {
        200: {"description": "Server-Sent Events", "content": {"text/event-stream": {}}}
    }

    @api.get("/events", tags=["events"], response_class=StreamingResponse, responses=_sse)
    def events(
        last_event_id: Annotated[str | None, Header()] = None,
        after: int | None = Query(None, ge=0, description="like Last-Event-ID"),
        _: str = scoped("read"),
    ) -> StreamingResponse:
        """Every execution status change, new wait and ended step, as they happen."""
        assert state.hub is not None
        start = parse_last_event_id(last_event_id, after)
        return _event_stream(state.hub.stream(start))

    @api.get("/events/latest", tags=["events"])
    def latest_event(_: str = scoped("read")) -> dict[str, int]:
        """The newest event's id: start a stream after it to get only what comes next."""
        return {"latest": service.store.events.latest_id()}

    @api.get(
        "/executions/{exec_id}/events",
        tags=["events"],
        response_class=StreamingResponse,
        responses=_sse,
    )
    def execution_events(
        exec_id: str,
        last_event_id: Annotated[str | None, Header()] = None,
        after: int | None = Query(None, ge=0, description="like Last-Event-ID"),
        _: str = scoped("read"),
    ) -> StreamingResponse:
        """The events of one execution."""
        assert state.hub is not None
        record = service.store.require_execution(exec_id)
        start = parse_last_event_id(last_event_id, after)
        return _event_stream(state.hub.stream(start, exec_id=record.id))

    # First: a flow process makes a store call per checkpoint, so they are matched
    # before the sixty-odd routes of the API and the UI.
    app.router.routes[:0] = store_routes(service.store, auth=state.auth)
    app.include_router(api)
    app.include_router(ui_router(state, checker))
    # Pages, assets and listings gzipped for clients that ask (event streams never are);
    # inside the gate, so nothing is compressed for a caller it refused.
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(Gate, checker=checker, auth=state.auth)
    app.openapi_schema = None
    _add_problem_schema(app)
    if state.mcp is not None:
        mount_mcp(app, state.mcp, checker if state.auth else None)
    return app


def attachment(name: str) -> str:
    """``Content-Disposition`` for a download named after the artifact."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    return f'attachment; filename="{safe or "artifact"}"'


def _event_stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _add_problem_schema(app: FastAPI) -> None:
    """Put ProblemDetails in the OpenAPI components (error responses refer to it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["ProblemDetails"] = ProblemDetails.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
