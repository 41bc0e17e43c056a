"""The MCP server, through the ``mcp`` SDK's own client: over stdio (``kitaru mcp``)
and over streamable HTTP (``kitaru serve`` at ``/mcp``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from kitaru_server import REVIEW_FLOW, Served, start_server

TOOLS = {
    "list_executions",
    "get_execution",
    "pending_waits",
    "give_input",
    "start_flow",
    "replay",
    "diff",
    "get_artifact",
    "memory_get",
    "memory_set",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(tmp_path_factory.mktemp("mcp"), REVIEW_FLOW)
    yield server
    server.stop()


@asynccontextmanager
async def over_http(served: Served, scope: str) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {served.tokens[scope]}"}, timeout=60
    )
    async with http, Client(streamable_http_client(served.url + "/mcp", http_client=http)) as c:
        yield c


@asynccontextmanager
async def over_stdio(served: Served) -> AsyncIterator[Any]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "kitaru", "mcp", "--flows", REVIEW_FLOW],
        env=served.env,
        cwd=str(served.home.parent),
    )
    async with Client(parameters) as client:
        yield client


async def call(client: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    data: dict[str, Any] = json.loads(result.content[0].text)
    return data


async def until(client: Any, exec_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        execution = await call(client, "get_execution", exec_id=exec_id)
        if execution["status"] == status:
            return execution
        assert time.monotonic() < deadline, f"{exec_id} stayed {execution['status']}"
        await asyncio.sleep(0.1)


async def review_through(client: Any, key: str) -> dict[str, Any]:
    """The review example end to end, as an agent would drive it."""
    listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS
    start_schema = tools["start_flow"].input_schema
    assert start_schema["properties"]["flow"]["enum"] == ["review"]
    assert start_schema["required"] == ["flow"]
    give_schema = tools["give_input"].input_schema
    assert set(give_schema["properties"]) == {"exec_id", "value", "wait"}
    assert set(give_schema["required"]) == {"exec_id", "value"}

    started = await call(
        client,
        "start_flow",
        flow="review",
        args={"topic": "durable agents"},
        idempotency_key=key,
    )
    exec_id = started["exec_id"]
    assert exec_id == key
    await until(client, exec_id, "waiting")
    waits = (await call(client, "pending_waits", exec_id=exec_id))["waits"]
    assert [(w["name"], w["question"], w["schema"]) for w in waits] == [
        ("approve_draft", "Approve draft?", {"type": "boolean"})
    ]
    refused = await client.call_tool(
        "give_input", {"exec_id": exec_id, "wait": "approve_draft", "value": "sure"}
    )
    assert refused.is_error
    assert refused.content[0].text.startswith(
        f"input for wait 'approve_draft' of execution {exec_id} must be bool"
    )
    await call(client, "give_input", exec_id=exec_id, wait="approve_draft", value=True)
    done = await until(client, exec_id, "completed")
    assert done["result"]["published"] is True
    missing = await client.call_tool("get_execution", {"exec_id": "no-such-run"})
    assert missing.is_error
    assert missing.content[0].text == (
        "no execution with id 'no-such-run'; `kitaru executions list` shows them"
    )
    return done


def test_an_mcp_client_over_http_runs_the_review_example(served: Served) -> None:
    async def scenario() -> None:
        async with over_http(served, "admin") as client:
            done = await review_through(client, "review-mcp-http")
            artifact = await call(client, "get_artifact", artifact_id=done["result_artifact_id"])
            assert artifact["value"]["published"] is True
            written = await call(client, "memory_set", key="style", value={"tone": "plain"})
            assert written["version"] == 1
            read = await call(client, "memory_get", key="style")
            assert read["value"] == {"tone": "plain"}
            page = await call(client, "list_executions", flow="review", limit=5)
            assert [e["exec_id"] for e in page["executions"]] == ["review-mcp-http"]

    asyncio.run(scenario())


def test_mcp_over_http_keeps_the_token_scopes(served: Served) -> None:
    async def scenario() -> None:
        async with over_http(served, "read") as client:
            listed = await call(client, "list_executions")
            assert "executions" in listed
            refused = await client.call_tool("memory_set", {"key": "k", "value": 1})
            assert refused.is_error
            assert "scope 'read'" in refused.content[0].text
            refused = await client.call_tool("start_flow", {"flow": "review", "args": {}})
            assert refused.is_error and "needs 'run'" in refused.content[0].text

    asyncio.run(scenario())


def test_an_mcp_client_over_stdio_runs_the_review_example(served: Served) -> None:
    async def scenario() -> None:
        async with over_stdio(served) as client:
            await review_through(client, "review-mcp-stdio")

    asyncio.run(scenario())
    assert Path(served.home).exists()


def test_mcp_replay_of_an_execution_of_an_unserved_flow_is_refused(served: Served) -> None:
    effects = served.home.parent / "mcp-effects.txt"
    ran = served.kitaru(
        "run",
        "hostile_flows:unserved",
        "--arg",
        "n=1",
        "-o",
        "json",
        KITARU_TEST_EFFECTS=str(effects),
    )
    assert ran.returncode == 0, ran.stderr
    exec_id = json.loads(ran.stdout)["exec_id"]

    async def scenario() -> None:
        async with over_http(served, "run") as client:
            refused = await client.call_tool(
                "replay", {"exec_id": exec_id, "from_checkpoint": "mark", "args": {"n": 2}}
            )
            assert refused.is_error
            assert "which this server does not serve" in refused.content[0].text

    asyncio.run(scenario())
    time.sleep(0.5)
    assert effects.read_text().splitlines() == ["ran 1"]
