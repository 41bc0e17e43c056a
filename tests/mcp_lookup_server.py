"""A small MCP server over stdio for the PydanticAI adapter's tests: one tool, whose
calls are counted in ``$KITARU_TEST_EFFECTS``."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("lookup")


@server.tool()
def lookup(term: str) -> str:
    """What a term means."""
    path = os.environ.get("KITARU_TEST_EFFECTS")
    if path:
        with open(path, "a") as f:
            f.write(f"mcp:lookup:{term}\n")
    return f"{term}: a record of every step"


if __name__ == "__main__":
    server.run("stdio")
