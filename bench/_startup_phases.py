"""Child process for startup.py: times start-up phases in a fresh interpreter, prints JSON.

Usage: _startup_phases.py ours|minimal (settings for `ours` come from the environment).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import anyio  # noqa: E402
import mcp.server  # noqa: E402, F401

T_SDK = time.perf_counter()


async def first_list(server: Any) -> None:
    from mcp import Client

    async with Client(server) as client:
        await client.list_tools()


def main() -> None:
    phases: dict[str, float] = {"import mcp SDK (+ anyio)": T_SDK - T0}
    t = time.perf_counter()
    if sys.argv[1] == "ours":
        import invoice_mcp.faces.cli
        import invoice_mcp.server
        from invoice_mcp.api.settings import load_settings

        phases["import our package"] = time.perf_counter() - t
        t = time.perf_counter()
        server: Any = invoice_mcp.server.build_server(load_settings())
    else:
        from mcp.server import MCPServer

        phases["import our package"] = 0.0
        server = MCPServer("minimal", version="0.0.0")

        @server.tool()
        async def noop() -> str:
            """Do nothing."""
            return "ok"

    phases["build the server (tools, schemas, prompts)"] = time.perf_counter() - t
    t = time.perf_counter()
    anyio.run(first_list, server)
    phases["connect in-memory + first tools/list"] = time.perf_counter() - t
    print(json.dumps(phases))


if __name__ == "__main__":
    main()
