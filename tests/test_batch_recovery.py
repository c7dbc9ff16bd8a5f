"""Billing runs that survive a killed server and replicas racing on one Postgres.

The server runs as a real subprocess over stdio; the sandbox's request log counts the POSTs and
its fault injection holds one POST in flight at the moment of the kill.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

from .conftest import settings_for, text_of
from .procs import api_env, base_env

pytestmark = pytest.mark.anyio


def posts(sb: Sandbox) -> int:
    return len([r for r in sb.requests("POST", "/invoices") if r.path == "/invoices"])


def rows_for(sb: Sandbox, n: int, tag: str) -> list[dict[str, Any]]:
    customers = sb.customers()
    return [
        {
            "customer": customers[i % len(customers)]["id"],
            "due_date": "2027-02-01",
            "line_items": [{"description": f"{tag} {i}", "amount": 5 + i, "quantity": 1}],
        }
        for i in range(n)
    ]


def made(sb: Sandbox, tag: str) -> list[str]:
    return [li["description"] for i in sb.invoices() for li in i["line_items"] if li["description"].startswith(tag)]


def server_pid(marker: str) -> int:
    """The pid of the server subprocess whose command line carries ``marker`` (its state path)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in cmd and any(b"invoice_mcp" in c for c in cmd):
                return int(entry.name)
    raise AssertionError("server process not found")


async def until(cond: Any, limit_s: float = 30.0) -> None:
    """Wait for the sandbox thread to reach a state (a condition, not a fixed sleep)."""
    with anyio.fail_after(limit_s):
        while not cond():  # noqa: ASYNC110 - set by the sandbox thread, no event to await
            await anyio.sleep(0.005)


@pytest.mark.slow
async def test_sigkill_mid_batch_then_reissue_sends_only_the_rest(sandbox: Sandbox, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    env = base_env(api_env(sandbox, AP_RATE_LIMIT="5", INVOICE_MCP_CONFIRM="never"))
    params = StdioServerParameters(command=sys.executable, args=["-m", "invoice_mcp", "--state", url], env=env)
    rows = rows_for(sandbox, 50, "Killed run")
    failures: list[BaseException] = []

    with pytest.raises(BaseException):  # noqa: B017 - the session dies with its server
        async with Client(params) as c:

            async def run() -> None:
                try:
                    await c.call_tool("create_invoices", {"rows": rows})
                except BaseException as exc:
                    failures.append(exc)
                    raise

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await until(lambda: posts(sandbox) >= 20)
                # the next POST (the 21st, or a later one on a slow machine) is held by the sandbox,
                # so it is in flight when the server dies; the batch sends one POST at a time
                hold = sandbox.faults.hold_next(1, method="POST", path="/invoices")
                await until(lambda: hold.arrived == 1)
                landed = posts(sandbox) + 1
                os.kill(server_pid(url), signal.SIGKILL)
    assert failures, "the call died with the server"
    hold.release()
    await until(lambda: posts(sandbox) == landed)  # the held POST still lands on the API
    assert len(made(sandbox, "Killed run")) == landed
    rest = 50 - landed

    sandbox.clear_log()
    async with Client(params) as c:
        res = await c.call_tool("create_invoices", {"rows": rows})
    assert not res.is_error, text_of(res)
    # The re-issue costs about what its POSTs cost: the token, one customer directory read, one look
    # at recent invoices and the remaining POSTs. (Its pacing is the limiter's, proved on an injected clock in
    # tests/api/test_ratelimit.py; arrival times seen here carry the machine's scheduling jitter.)
    assert len([r for r in sandbox.requests() if r.path != "/oauth/token"]) <= rest + 3
    assert posts(sandbox) == rest, "only the rest: the in-flight one was found on the API, not re-sent"
    names = made(sandbox, "Killed run")
    assert len(names) == 50 and len(set(names)) == 50
    sc = res.structured_content
    assert sc["counts"]["created"] == 50
    earlier = [r[0] for r in sc["rows"] if r[5]]
    assert earlier == list(range(landed))


@pytest.mark.slow
async def test_two_replicas_on_one_postgres_create_each_row_once(sandbox: Sandbox, postgres_url: str) -> None:
    settings = settings_for(sandbox, INVOICE_MCP_STATE=postgres_url, INVOICE_MCP_CONFIRM="never")
    rows = rows_for(sandbox, 12, "Raced run")
    results: list[Any] = []
    async with Client(build_server(settings)) as a, Client(build_server(settings)) as b:

        async def issue(c: Client) -> None:
            results.append(await c.call_tool("create_invoices", {"rows": rows}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(issue, a)
            tg.start_soon(issue, b)
    assert [r.is_error for r in results] == [False, False], [text_of(r) for r in results]
    assert posts(sandbox) == 12
    names = made(sandbox, "Raced run")
    assert len(names) == 12 and len(set(names)) == 12
    for r in results:
        assert r.structured_content["counts"]["created"] == 12
    # one replica did the work, the other reported it
    assert sorted(sum(1 for row in r.structured_content["rows"] if row[5]) for r in results) == [0, 12]
