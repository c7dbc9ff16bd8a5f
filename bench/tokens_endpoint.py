"""Token requests for 1,000 tool calls from 100 concurrent tasks, starting cold: the target is exactly one.

In-memory `mcp.Client(build_server(settings))` and the real stdio server, each against a fresh sandbox
(rate_limit=None, AP_RATE_LIMIT=100000).
Run: .venv/bin/python bench/tokens_endpoint.py
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import anyio
from _common import our_params, sandbox, server_env, settings_for, stderr_sink, stdio, table, verdict
from mcp import Client

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

CALLS = 1000
TASKS = 100


async def hammer(client: Client, ids: list[str]) -> tuple[float, int]:
    errors = 0

    async def worker(w: int) -> None:
        nonlocal errors
        for k in range(CALLS // TASKS):
            res = await client.call_tool("get_invoice", {"invoice": ids[(w * 7 + k) % len(ids)]})
            errors += int(bool(res.is_error))

    t = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(TASKS):
            tg.start_soon(worker, w)
    return time.perf_counter() - t, errors


def endpoint(path: str) -> str:
    if path.startswith("/invoices/"):
        return "/invoices/{id}"
    return path


async def scenario(sb: Sandbox, name: str) -> list[Any]:
    ids = [inv["id"] for inv in sb.invoices(include_archived=False)]
    sb.clear_log()
    if name == "in-memory":
        async with Client(build_server(settings_for(sb, rate_limit=100_000))) as client:
            wall, errors = await hammer(client, ids)
    else:
        with stderr_sink("tokens-endpoint") as err:
            async with Client(stdio(our_params(server_env(sb, rate_limit=100_000)), err)) as client:
                sb.clear_log()
                wall, errors = await hammer(client, ids)
    reqs = Counter(f"{r.method} {endpoint(r.path)}" for r in sb.requests())
    return [
        name,
        CALLS,
        TASKS,
        errors,
        sb.token_requests,
        reqs.get("GET /invoices/{id}", 0),
        reqs.get("GET /customers", 0),
        sum(reqs.values()),
        wall,
        verdict(sb.token_requests == 1 and errors == 0),
    ]


async def run() -> str:
    rows = []
    for name in ("in-memory", "stdio"):
        with sandbox(invoices=300, rate_limit=None) as sb:
            rows.append(await scenario(sb, name))
    return "\n".join(
        [
            f"### {CALLS:,} get_invoice calls from {TASKS} concurrent tasks, cold start",
            "",
            table(
                [
                    "client",
                    "calls",
                    "tasks",
                    "tool errors",
                    "token requests",
                    "GET /invoices/{id}",
                    "GET /customers",
                    "all upstream",
                    "wall s",
                    "exactly 1 token request",
                ],
                rows,
            ),
        ]
    )


def main() -> None:
    print("## Token endpoint under concurrency (bench/tokens_endpoint.py)\n")
    print(anyio.run(run))


if __name__ == "__main__":
    main()
