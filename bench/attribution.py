"""Payments tied to invoices: upstream requests per payment attributed, cold (empty index), warm
(same server, index in memory), after a restart (new server, same SQLite file) and for the
failed-attempt filter, against the baseline of the same run: one `/payments?invoice_id=` walk per
invoice of the ledger (what attributing every payment takes without an index).

Run: .venv/bin/python bench/attribution.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
from _common import sandbox, table
from mcp import Client

from invoice_mcp.api.settings import load_settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

PAGES = 4
LIMIT = 100


def _settings(sb: Sandbox, state: str) -> Any:
    return load_settings(
        {
            "AP_CLIENT_ID": sb.config.client_id,
            "AP_CLIENT_SECRET": sb.config.client_secret,
            "AP_BASE_URL": sb.base_url,
            "AP_RATE_LIMIT": "1000",
            "INVOICE_MCP_STATE": state,
        }
    )


def _count(sb: Sandbox) -> tuple[int, int]:
    """(every upstream request, the /payments?invoice_id= walks among them)."""
    log = sb.requests()
    return len(log), sum(1 for r in log if r.path == "/payments" and "invoice_id" in r.query)


async def _pages(c: Client) -> int:
    """list_payments over PAGES chunks of LIMIT; how many rows were attributed."""
    attributed, cursor = 0, None
    for _ in range(PAGES):
        args: dict[str, Any] = {"limit": LIMIT} | ({"cursor": cursor} if cursor else {})
        r = await c.call_tool("list_payments", args)
        if r.is_error or r.structured_content is None:
            raise RuntimeError(str(r.content))
        sc = r.structured_content
        attributed += sum(1 for row in sc["rows"] if row[sc["cols"].index("invoice")])
        cursor = sc.get("next_cursor")
        if not cursor:
            break
    return attributed


async def run() -> str:
    rows: list[list[object]] = []
    with sandbox(invoices=300) as sb, tempfile.TemporaryDirectory() as tmp:
        state = f"sqlite:///{Path(tmp) / 'state.db'}"
        baseline = len(sb.payments_by_invoice())
        tied = sum(len(v) for v in sb.payments_by_invoice().values())
        rows.append(["baseline: one walk per invoice", tied, baseline, baseline, baseline / tied, 1.0])

        def add(label: str, got: int, before: tuple[int, int]) -> None:
            total, walks = _count(sb)
            req, wk = total - before[0], walks - before[1]
            rows.append([label, got, req, wk, req / max(got, 1), (req / max(got, 1)) / (baseline / tied)])

        sb.clear_log()
        async with Client(build_server(_settings(sb, state))) as c:
            add("list_payments cold", await _pages(c), (0, 0))
            mark = _count(sb)
            add("list_payments warm (same server)", await _pages(c), mark)
        mark = _count(sb)
        async with Client(build_server(_settings(sb, state))) as c:
            add("list_payments after restart (same file)", await _pages(c), mark)

        sb.clear_log()
        failed = sum(1 for p in sb.payments() if p["status"] == "failed")
        async with Client(build_server(_settings(sb, "sqlite://:memory:"))) as c:
            r = await c.call_tool("list_invoices", {"failed_payment": True, "unpaid": True, "limit": 100})
            if r.is_error:
                raise RuntimeError(str(r.content))
            add("failed_payment+unpaid cold (per failed payment)", failed, (0, 0))
            mark = _count(sb)
            await c.call_tool("list_invoices", {"failed_payment": True, "unpaid": True, "limit": 100})
            add("failed_payment+unpaid warm", failed, mark)
    head = ["case", "payments attributed", "requests", "invoice walks", "requests/payment", "× baseline"]
    return "## Payment attribution (300 invoices)\n\n" + table(head, rows)


def main() -> None:
    print(anyio.run(run))


if __name__ == "__main__":
    main()
