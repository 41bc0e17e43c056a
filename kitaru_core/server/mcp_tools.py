"""The MCP server: Kitaru's operations as tools, over stdio (``kitaru mcp``) or
streamable HTTP at ``/mcp`` (with the API's bearer tokens and scopes).

Each tool takes exactly the arguments its input schema lists, returns the same JSON
as the HTTP API, and reports a refused call as a tool error whose text is the CLI's
one-line message, so an agent reads what a person would.
"""

import functools
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from kitaru_core import __version__
from kitaru_core.errors import KitaruError
from kitaru_core.server.problems import problem_response
from kitaru_core.server.service import Service
from kitaru_core.server.tokens import SCOPES, TokenChecker, TokenRefused, allows

granted_scope: ContextVar[str] = ContextVar("kitaru_mcp_scope", default="admin")
"""The scope of the token of the HTTP request being served; over stdio the user runs
the server with their own database access, so everything is allowed."""

StatusName = Literal["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"]
ScopeType = Literal["namespace", "flow", "execution", "key"]
ExecId = Annotated[str, Field(description="an execution id (or a unique prefix of one)")]


def _result(data: Any) -> CallToolResult:
    structured = data if isinstance(data, dict) else {"result": data}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(data, indent=2))],
        structured_content=structured,
    )


def _refused(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _tool(
    server: MCPServer, needed: str, description: str
) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[CallToolResult]]]:
    """Register ``fn`` (a plain function over the service) as a tool needing scope
    ``needed``; it runs in a worker thread, and Kitaru's errors become tool errors."""

    def register(fn: Callable[..., Any]) -> Callable[..., Awaitable[CallToolResult]]:
        @functools.wraps(fn)
        async def call(**kwargs: Any) -> CallToolResult:
            scope = granted_scope.get()
            if not allows(scope, needed):
                return _refused(
                    f"this token has scope {scope!r}; {fn.__name__} needs {needed!r} or "
                    f"higher ({' < '.join(SCOPES)})"
                )
            try:
                data = await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))
            except KitaruError as exc:
                return _refused(str(exc).splitlines()[0])
            return _result(data)

        call.__annotations__ = {**fn.__annotations__, "return": CallToolResult}
        server.add_tool(call, name=fn.__name__, description=description)
        return call

    return register


def build_mcp(service: Service) -> MCPServer:
    server = MCPServer(
        "kitaru",
        version=__version__,
        instructions="Durable executions of Python agent flows: list and read them, start "
        "flows, answer their pending waits (each wait's JSON schema is in pending_waits), "
        "replay and compare them, and read or write versioned memory.",
    )
    flows = sorted(f.name for f in service.catalog)
    # The served flows as an enum (the service refuses any other with their list).
    FlowName: Any = Annotated[
        str, Field(description="a served flow", json_schema_extra={"enum": list(flows)})
    ]

    @_tool(server, "read", "List executions, newest first (one page; pass next_cursor on).")
    def list_executions(
        status: StatusName | None = None,
        flow: Annotated[str | None, Field(description="only this flow's")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the last page")] = None,
    ) -> dict[str, Any]:
        page, following = service.list_executions(
            status=status, flow=flow, limit=limit, cursor=cursor
        )
        return {"executions": page, "next_cursor": following}

    @_tool(server, "read", "One execution: status, steps, pending wait, LLM calls, result.")
    def get_execution(exec_id: ExecId) -> dict[str, Any]:
        return service.execution(exec_id)

    @_tool(server, "read", "Waits nobody answered yet, each with its question and JSON schema.")
    def pending_waits(
        exec_id: Annotated[str | None, Field(description="only this execution's")] = None,
    ) -> dict[str, Any]:
        return {"waits": service.pending_waits(exec_id)}

    @_tool(
        server,
        "input",
        "Answer a pending wait with a value that fits its schema; the execution resumes.",
    )
    def give_input(
        exec_id: ExecId,
        value: Annotated[Any, Field(description="JSON that fits the wait's schema")],
        wait: Annotated[
            str | None, Field(description="the wait's name; optional when one is pending")
        ] = None,
    ) -> dict[str, Any]:
        return service.give_input(exec_id, wait, value)

    @_tool(server, "run", "Start an execution of a served flow; returns it at once.")
    def start_flow(
        flow: FlowName,
        args: Annotated[dict[str, Any], Field(description="the flow's arguments")] = {},  # noqa: B006
        idempotency_key: Annotated[
            str | None, Field(description="becomes the execution id: a repeat starts nothing")
        ] = None,
    ) -> dict[str, Any]:
        return service.start(flow, args, exec_id=idempotency_key)[0]

    @_tool(server, "run", "Replay an execution from a checkpoint, with overridden outputs.")
    def replay(
        exec_id: ExecId,
        from_checkpoint: Annotated[str, Field(description="checkpoint name to rerun from")],
        overrides: Annotated[
            dict[str, Any], Field(description='"checkpoint.NAME" to the value it returns')
        ] = {},  # noqa: B006
        args: Annotated[dict[str, Any], Field(description="replaced flow inputs")] = {},  # noqa: B006
    ) -> dict[str, Any]:
        return service.replay(exec_id, from_=from_checkpoint, overrides=overrides, args=args)

    @_tool(server, "read", "Compare two executions step by step.")
    def diff(a: ExecId, b: ExecId) -> dict[str, Any]:
        return service.diff(a, b)

    @_tool(server, "read", "An artifact's value (JSON or text; binary ones are described).")
    def get_artifact(artifact_id: str) -> dict[str, Any]:
        content = service.artifact(artifact_id)
        if content.stream is not None:
            size = content.record.size
            return {
                "artifact_id": artifact_id,
                "media_type": content.media_type,
                "size": size,
                "note": f"binary content; fetch GET /api/v1/artifacts/{artifact_id}",
            }
        return {"artifact_id": artifact_id, "value": content.value}

    @_tool(server, "read", "Read a memory key (the newest version, or a given one).")
    def memory_get(
        key: str,
        scope: str = "default",
        scope_type: ScopeType = "namespace",
        version: Annotated[int | None, Field(ge=1)] = None,
    ) -> dict[str, Any]:
        return service.memory_get(scope_type, scope, key, version)

    @_tool(server, "admin", "Write a new version of a memory key (plain JSON).")
    def memory_set(
        key: str,
        value: Annotated[Any, Field(description="plain JSON data")],
        scope: str = "default",
        scope_type: ScopeType = "namespace",
        expected_version: Annotated[
            int | None, Field(description="compare-and-set: 0 means the key must not exist")
        ] = None,
    ) -> dict[str, Any]:
        return service.memory_set(scope_type, scope, key, value, expected_version)

    return server


class _BearerGuard:
    """ASGI wrapper of the MCP endpoint: the API's tokens, and their scope for tools."""

    def __init__(self, app: Any, checker: TokenChecker | None) -> None:
        self.app = app
        self.checker = checker

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.checker is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"authorization", b"").decode("latin-1")
        bearer = raw[7:].strip() if raw[:7].lower() == "bearer " else None
        try:
            record = await anyio.to_thread.run_sync(self.checker.verify, bearer)
        except TokenRefused as exc:
            await problem_response(401, "Unauthorized", str(exc))(scope, receive, send)
            return
        token = granted_scope.set(record.scope)
        try:
            await self.app(scope, receive, send)
        finally:
            granted_scope.reset(token)


def mount_mcp(app: Any, server: MCPServer, checker: TokenChecker | None) -> None:
    """Serve ``server`` at ``/mcp`` of ``app`` (stateless streamable HTTP)."""
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.routing import Route

    mcp_app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        # The API's own tokens guard it; Host checks would refuse a server's real name.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    handler = next(r for r in mcp_app.routes if getattr(r, "path", None) == "/mcp")
    asgi = handler.app  # type: ignore[attr-defined]
    guarded = _BearerGuard(asgi, checker)
    app.router.routes.append(Route("/mcp", endpoint=guarded, methods=["GET", "POST", "DELETE"]))
