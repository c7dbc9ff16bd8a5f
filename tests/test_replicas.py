"""Two server processes sharing one API key through Redis: one token, one rate limit."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import anyio
import pytest
from mcp import Client, StdioServerParameters

from invoice_mcp.sandbox import Sandbox

from .conftest import new_sandbox
from .procs import api_env, base_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def limited_sandbox() -> Iterator[Sandbox]:
    sb = new_sandbox(rate_limit=5.0)
    sb.start()
    yield sb
    sb.stop()


async def test_two_replicas_share_token_and_rate_limit(redis_url: str, limited_sandbox: Sandbox) -> None:
    sb = limited_sandbox
    env = base_env(api_env(sb, AP_RATE_LIMIT="5", INVOICE_MCP_REDIS_URL=redis_url))
    params = StdioServerParameters(command=sys.executable, args=["-m", "invoice_mcp"], env=env)
    ids = [i["id"] for i in sb.invoices(include_archived=False)][:16]
    errors: list[str] = []

    async def replica(mine: list[str]) -> None:
        async with Client(params) as c, anyio.create_task_group() as tg:
            for invoice_id in mine:

                async def one(ref: str = invoice_id) -> None:
                    r = await c.call_tool("get_invoice", {"invoice": ref})
                    if r.is_error:
                        errors.append(str(r.content))

                tg.start_soon(one)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(replica, ids[0::2])
            tg.start_soon(replica, ids[1::2])

    assert errors == []
    log = sb.requests()
    assert [r.status for r in log if r.status == 429] == []  # each process alone would burst past 5/s
    assert sb.token_requests == 1  # the token minted by one replica served the other
    assert len(log) >= 17  # the token, the lookups and the 16 invoices went upstream
