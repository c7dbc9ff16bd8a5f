"""Gateway mode under many tenants: calls/s and memory for 50 partner accounts interleaved.

One sandbox (in this process, a thread) serves 50 credential pairs, each with its own data
(100 invoices, 6 customers). Three HTTP servers run as subprocesses, each driven over
streamable HTTP by the SDK client with 8 calls in flight:

* baseline: the single-account server (`--transport http`): 50 sessions, one account;
* gateway x1: `--transport http --gateway`: 50 sessions, all with the same credentials;
* gateway x50: a fresh gateway process: 50 sessions, 50 tenants interleaved (tenant i, i+1,
  ... call after call).

Each does a cold round (the first call per tenant: the gateway builds the tenant and mints
its token) and then the same number of warm calls, 2 x 50 x ROUNDS: `list_invoices` (limit 5,
a status filter) and `get_invoice`, round-robin over the tenants. Reported: calls/s (warm),
the cold round's wall time, upstream token requests (from the sandbox log; 1 per tenant
expected), all upstream requests, the server's peak RSS (VmHWM) and its growth over the
single-tenant gateway, per extra tenant. The three configurations alternate over REPEATS
repeats (medians reported; the machine is shared, so calls/s is noisy).

    .venv/bin/python bench/gateway.py            # about 1 min on 2 cores
    BENCH_GATEWAY_TENANTS=20 BENCH_GATEWAY_ROUNDS=4 .venv/bin/python bench/gateway.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import TODAY, machine_line, proc_status_kb, table

from invoice_mcp.sandbox import Sandbox, SandboxConfig, TenantConfig
from invoice_mcp.server.gateway import CLIENT_ID_HEADER, CLIENT_SECRET_HEADER
from tests.procs import HTTPServer, api_env, http_servers

TENANTS = int(os.environ.get("BENCH_GATEWAY_TENANTS", "50"))
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "6"))
REPEATS = int(os.environ.get("BENCH_GATEWAY_REPEATS", "3"))
IN_FLIGHT = 8
TOKEN = "bench-gateway-token-5d2f9a"
STATUSES = ("open", "paid", "overdue", "partially_paid", "draft")


@dataclass(frozen=True)
class Account:
    client_id: str
    secret: str
    invoice_ids: tuple[str, ...]


@dataclass
class Run:
    name: str
    tenants: int
    calls: int
    cold_s: float
    warm_calls_per_s: float
    token_requests: int
    upstream: int
    peak_rss_kb: int


@asynccontextmanager
async def session(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def drive(url: str, accounts: Sequence[Account], gateway: bool, rounds: int) -> tuple[float, float, int]:
    """Cold round, then warm rounds interleaved across accounts; (cold s, warm calls/s, calls)."""
    async with AsyncExitStack() as stack:
        clients: list[Client] = []
        for acc in accounts:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if gateway:
                headers |= {CLIENT_ID_HEADER: acc.client_id, CLIENT_SECRET_HEADER: acc.secret}
            clients.append(await stack.enter_async_context(session(url, headers)))

        async def run(jobs: list[tuple[Client, str, dict[str, Any]]]) -> float:
            queue = list(reversed(jobs))
            started = time.perf_counter()

            async def worker() -> None:
                while queue:
                    client, tool, args = queue.pop()
                    r = await client.call_tool(tool, args)
                    if r.is_error:
                        raise RuntimeError(f"{tool} failed: {r.content}")

            async with anyio.create_task_group() as tg:
                for _ in range(IN_FLIGHT):
                    tg.start_soon(worker)
            return time.perf_counter() - started

        cold = await run([(c, "list_invoices", {"limit": 5}) for c in clients])
        warm_jobs: list[tuple[Client, str, dict[str, Any]]] = []
        for r in range(rounds):
            for i, (client, acc) in enumerate(zip(clients, accounts, strict=True)):
                warm_jobs.append((client, "list_invoices", {"limit": 5, "status": STATUSES[(r + i) % len(STATUSES)]}))
                warm_jobs.append((client, "get_invoice", {"invoice": acc.invoice_ids[(r * 7 + i) % 50]}))
        warm = await run(warm_jobs)
        return cold, len(warm_jobs) / warm, len(clients) + len(warm_jobs)


def measure(name: str, sb: Sandbox, env: dict[str, str], accounts: Sequence[Account], gateway: bool) -> Run:
    sb.clear_log()
    with http_servers((env, ("--log-level", "WARNING")), cwd=Path.cwd()) as servers:
        server: HTTPServer = servers[0]
        cold, rate, calls = anyio.run(drive, server.url, accounts, gateway, ROUNDS)
        peak = proc_status_kb(server.proc.pid, "VmHWM")
    tenants = len({a.client_id for a in accounts})
    return Run(name, tenants, calls, cold, rate, sb.token_requests, len(sb.requests()), peak)


def main() -> None:
    extra = tuple(TenantConfig.numbered(k) for k in range(1, TENANTS))
    config = SandboxConfig(today=TODAY, rate_limit=None, invoices=100, customers=6, tenants=extra)
    with Sandbox(config) as sb:
        accounts = [
            Account(cid, secret, tuple(i["id"] for i in sb.invoices(include_archived=False, tenant=cid)[:50]))
            for cid, secret in [(config.client_id, config.client_secret)]
            + [(t.client_id, t.client_secret) for t in extra]
        ]
        common = {"AP_RATE_LIMIT": "100000", "AP_TIMEOUT_S": "30", "INVOICE_MCP_HTTP_TOKEN": TOKEN}
        single = api_env(sb, **{**common, "AP_CLIENT_ID": config.client_id, "AP_CLIENT_SECRET": config.client_secret})
        gw = api_env(sb, **{**common, "AP_CLIENT_ID": "", "AP_CLIENT_SECRET": "", "INVOICE_MCP_GATEWAY": "1"})
        configs = [
            ("single-account server", single, accounts[:1] * TENANTS, False),
            ("gateway, 1 tenant", gw, accounts[:1] * TENANTS, True),
            (f"gateway, {TENANTS} tenants interleaved", gw, accounts, True),
        ]
        runs: list[list[Run]] = [[] for _ in configs]
        for rep in range(REPEATS):  # alternate the order: drift on a shared machine hits every config alike
            order = list(range(len(configs))) if rep % 2 == 0 else list(reversed(range(len(configs))))
            for k in order:
                name, env, accs, gateway = configs[k]
                runs[k].append(measure(name, sb, env, accs, gateway))
    print(f"# Gateway: {TENANTS} tenants, {ROUNDS} warm rounds, {IN_FLIGHT} calls in flight, {REPEATS} repeats\n")
    ratios = [
        statistics.median(r.warm_calls_per_s / b.warm_calls_per_s for r, b in zip(rs, runs[0], strict=True))
        for rs in runs
    ]
    print(
        table(
            [
                "server",
                "tenants",
                "calls",
                "cold round s (median)",
                "warm calls/s (median)",
                "min-max",
                "vs baseline (median ratio)",
                "token requests",
                "upstream requests",
                "peak RSS MB (max)",
            ],
            [
                (
                    rs[0].name,
                    rs[0].tenants,
                    rs[0].calls,
                    statistics.median(r.cold_s for r in rs),
                    statistics.median(r.warm_calls_per_s for r in rs),
                    f"{min(r.warm_calls_per_s for r in rs):.0f}-{max(r.warm_calls_per_s for r in rs):.0f}",
                    ratio,
                    max(r.token_requests for r in rs),
                    max(r.upstream for r in rs),
                    max(r.peak_rss_kb for r in rs) / 1024,
                )
                for rs, ratio in zip(runs, ratios, strict=True)
            ],
        )
    )
    one, many = max(r.peak_rss_kb for r in runs[1]), max(r.peak_rss_kb for r in runs[2])
    per_tenant = (many - one) / max(1, TENANTS - 1)
    tokens = max(r.token_requests for r in runs[2])
    print(
        f"\nPeak RSS per extra tenant: {per_tenant:.0f} kB; "
        f"token requests per tenant: {tokens / TENANTS:.2f} (expected 1.00)"
    )
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
