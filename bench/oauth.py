"""OAuth mode: what a warm tool call costs with an OAuth access token against the same call
with the static bearer token, and what the authorization server holds per grant.

1. Latency. Two HTTP servers in this process (uvicorn threads) against one sandbox: the
   single-account server with INVOICE_MCP_HTTP_TOKEN, and the OAuth server (a grant for the
   same key, made through the connect page by raw HTTP). One SDK client session each; after
   a warm-up, CALLS `get_invoice` calls per round, the two alternating over ROUNDS rounds.
   Reported: median and p95 per call, and the ratio OAuth / bearer (the issue's bound: 1.05).
   Verification is cached (`VERIFY_CACHE_S`), so a warm call costs a dictionary lookup more.
2. Memory. GRANTS grants made and used through the provider (store rows, one verified access
   token and the decrypted key each, as a busy server holds them), measured with tracemalloc;
   per grant. (API tenants are per key, not per grant, and capped: INVOICE_MCP_GATEWAY_MAX_TENANTS.)

    .venv/bin/python bench/oauth.py         # about 30 s
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine_line, p95, sandbox, table, verdict

from invoice_mcp.api.settings import load_settings
from invoice_mcp.faces.http import HTTPOptions, build_http_app
from invoice_mcp.faces.oauth.config import OAuthConfig
from invoice_mcp.faces.oauth.provider import InvoiceAuthProvider, LinkedKey, Pending
from invoice_mcp.faces.oauth.store import MemoryGrantStore
from tests.oauth.harness import STATE_KEY, http_client, serve_app, serve_oauth, session, tokens_for

CALLS = int(os.environ.get("BENCH_OAUTH_CALLS", "40"))
ROUNDS = int(os.environ.get("BENCH_OAUTH_ROUNDS", "6"))
GRANTS = int(os.environ.get("BENCH_OAUTH_GRANTS", "1000"))
TOKEN = "bench-static-bearer-token-0123456789abcdef"


async def timed(client: object, invoice: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.call_tool("get_invoice", {"invoice": invoice})  # type: ignore[attr-defined]
        out.append((time.perf_counter() - t0) * 1000)
        assert not r.is_error
    return out


async def latency() -> tuple[list[float], list[float]]:
    with sandbox(invoices=100) as sb:
        invoice = sb.invoices(include_archived=False)[0]["id"]
        env = {
            "AP_CLIENT_ID": sb.config.client_id,
            "AP_CLIENT_SECRET": sb.config.client_secret,
            "AP_BASE_URL": sb.base_url,
            "AP_RATE_LIMIT": "1000",
            "INVOICE_MCP_HTTP_TOKEN": TOKEN,
        }
        bearer_app = build_http_app(load_settings(env), HTTPOptions(), log_level="WARNING")
        with serve_app(bearer_app) as bearer_base, serve_oauth(sb) as server:
            async with http_client() as http:
                _, tokens = await tokens_for(http, server, (sb.config.client_id, sb.config.client_secret))
            from mcp import Client
            from mcp.client.streamable_http import streamable_http_client

            async with (
                http_client(headers={"Authorization": f"Bearer {TOKEN}"}) as bhttp,
                Client(streamable_http_client(bearer_base + "/mcp", http_client=bhttp)) as bearer,
                session(server, tokens["access_token"]) as oauth,
            ):
                await timed(bearer, invoice, 5)
                await timed(oauth, invoice, 5)
                b: list[float] = []
                o: list[float] = []
                for i in range(ROUNDS):
                    first, second = (bearer, oauth) if i % 2 == 0 else (oauth, bearer)
                    x = await timed(first, invoice, CALLS)
                    y = await timed(second, invoice, CALLS)
                    (b, o)[0 if first is bearer else 1].extend(x)
                    (o, b)[0 if first is bearer else 1].extend(y)
                return b, o


async def memory() -> tuple[float, int]:
    config = OAuthConfig(public_url="https://mcp.example.com", state_key=STATE_KEY)
    store = MemoryGrantStore()
    provider = InvoiceAuthProvider(config, store)
    pendings = [
        Pending(
            client_id=f"client-{i}",
            client_name="Bench client",
            redirect_uri="https://client.example/cb",
            redirect_explicit=True,
            code_challenge="c" * 43,
            scopes=("invoices:read", "invoices:write"),
            state=None,
            resource=config.resource,
        )
        for i in range(GRANTS)
    ]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i, pending in enumerate(pendings):
        await provider.approve(pending, LinkedKey(f"key-{i}", f"secret-{i:08d}-" + "s" * 24, "demo"), pending.scopes)
    for code in list(store.codes.values()):
        grant = store.grants[code.grant_id]
        issued = await provider._issue(grant, grant.scopes.split())
        assert await provider.load_access_token(issued.access_token) is not None
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return grown / GRANTS, len(store.grants)


def main() -> int:
    b, o = asyncio.run(latency())
    ratio = statistics.median(o) / statistics.median(b)
    per_grant, held = asyncio.run(memory())
    print(machine_line())
    print()
    print(
        table(
            ["auth", "calls", "median ms", "p95 ms"],
            [
                ["static bearer (baseline)", len(b), statistics.median(b), p95(b)],
                ["OAuth access token", len(o), statistics.median(o), p95(o)],
            ],
        )
    )
    print()
    print(f"OAuth / bearer, warm get_invoice: {ratio:.3f}x (bound 1.05x): {verdict(ratio <= 1.05)}")
    print(f"{held:,} grants held: {per_grant / 1024:.1f} KiB per grant (store rows, verified token, decrypted key)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
