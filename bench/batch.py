"""A 50-invoice billing run: create_invoices once vs create_invoice 50 times (the baseline, same run).

Both under the API's 5 requests/second, in-process over real HTTP against the sandbox; reported:
upstream requests, confirmations asked, wall time against the floor (50 POSTs at 5/s = 10 s), and
the tokens a model reads (text view, structured view), with ratios against the baseline.

Run: .venv/bin/python bench/batch.py
"""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

import anyio
from _common import sandbox, server_env, table
from counting import tok
from mcp import Client
from mcp.types import ElicitResult

from invoice_mcp.api.settings import load_settings
from invoice_mcp.server import build_server

RATE = 5.0
ROWS = 50


def _rows(sb: Any, tag: str) -> list[dict[str, Any]]:
    customers = sb.customers()
    return [
        {
            "customer": customers[i % len(customers)]["id"],
            "due_date": "2027-01-15",
            "line_items": [{"description": f"{tag} {i}", "amount": 20 + i, "quantity": 1}],
        }
        for i in range(ROWS)
    ]


async def _run(batch: bool) -> dict[str, Any]:
    with sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({**server_env(sb, rate_limit=RATE), "INVOICE_MCP_STATE": f"sqlite:///{tmp}/state.db"})
        asked = 0

        async def approve(context: Any, params: Any) -> ElicitResult:
            nonlocal asked
            asked += 1
            return ElicitResult(action="accept", content={"ok": True})

        rows = _rows(sb, "Bench")
        async with Client(build_server(settings), elicitation_callback=approve) as c:
            await c.call_tool("find_customers", {"name": "a"})  # token and directory warm in both runs
            sb.clear_log()
            started = time.perf_counter()
            if batch:
                results = [await c.call_tool("create_invoices", {"rows": rows})]
            else:
                results = []
                for r in rows:
                    args = {"customer_id": r["customer"], "due_date": r["due_date"], "line_items": r["line_items"]}
                    results.append(await c.call_tool("create_invoice", args))
            wall = time.perf_counter() - started
        assert not any(r.is_error for r in results)
        text = sum(tok("\n".join(getattr(x, "text", "") for x in r.content)) for r in results)
        structured = sum(tok(json.dumps(r.structured_content, separators=(",", ":"))) for r in results)
        posts = len([q for q in sb.requests("POST", "/invoices") if q.path == "/invoices"])
        return {
            "wall": wall,
            "requests": len(sb.requests()),
            "posts": posts,
            "asked": asked,
            "text": text,
            "structured": structured,
        }


async def main() -> None:
    base = await _run(batch=False)
    run = await _run(batch=True)
    floor = ROWS / RATE
    rows = []
    for name, r in (("create_invoice × 50 (baseline)", base), ("create_invoices, one call", run)):
        rows.append(
            [
                name,
                r["posts"],
                r["requests"],
                f"{r['requests'] / base['requests']:.2f}×",
                r["asked"],
                r["wall"],
                f"{r['wall'] / floor:.2f}×",
                r["text"],
                f"{r['text'] / base['text']:.2f}×",
                r["structured"],
                f"{r['structured'] / base['structured']:.2f}×",
            ]
        )
    print(
        table(
            [
                "run",
                "POSTs",
                "requests",
                "vs baseline",
                "confirmations",
                "wall s",
                "vs 50 POSTs at 5/s",
                "text tokens",
                "vs baseline",
                "structured tokens",
                "vs baseline",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    anyio.run(main)
