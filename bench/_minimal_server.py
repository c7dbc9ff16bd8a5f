"""Baseline: the smallest useful MCPServer (one tool that does nothing), over stdio."""

from __future__ import annotations

from mcp.server import MCPServer

server = MCPServer("minimal", version="0.0.0")


@server.tool()
async def noop() -> str:
    """Do nothing."""
    return "ok"


if __name__ == "__main__":
    server.run()
