"""``kitaru serve``: the HTTP API, its event stream and metrics, and the MCP server.

Optional and off the hot path: ``import kitaru`` imports nothing from here, and only
``app``, ``mcp_tools`` and ``main`` import FastAPI, uvicorn or the ``mcp`` SDK
(``pip install "kitaru[server]"``). ``tokens`` and ``views`` are plain Python, shared
with the CLI and the HTTP client.
"""
