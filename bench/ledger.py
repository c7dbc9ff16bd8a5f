"""summarize_invoices over big ledgers: time, upstream requests and peak RSS of the stdio server process;
then wall time under the API's 5 requests/second limit against the floor (requests ÷ 5 s), for the
balance-aware summary (payments fetched for partially paid invoices) and for totals only
(balances=false, the summary as it was before balances).

Run: .venv/bin/python bench/ledger.py          (BENCH_LEDGER_SIZES=1000,10000 to skip the 100k walk)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from _common import (
    child_pids,
    our_params,
    proc_status_kb,
    sandbox,
    server_env,
    stderr_sink,
    stdio,
    table,
    verdict,
)
from mcp import Client

from invoice_mcp.sandbox import Sandbox

SIZES = tuple(int(x) for x in os.environ.get("BENCH_LEDGER_SIZES", "1000,10000,100000").split(","))
LIMITED_SIZES = (1000, 2000)
RATE = 5.0
TARGET = 1.1
ALL = {"max_invoices": 1_000_000}
TOTALS_ONLY = {**ALL, "balances": False}
REQUEST_TARGET = 1.5


@dataclass
class Walk:
    invoices: int
    count: int
    wall: float
    pages: int
    requests: int
    statuses_429: int
    rss_start_kb: int
    peak_kb: int
    payment_requests: int = 0
    partial: int = 0
    direct: float = 0.0


def _checked(res: Any) -> Any:
    if res.is_error:
        raise RuntimeError(str(res.content))
    return res


async def direct_walk(sb: Sandbox) -> float:
    """Floor for the unlimited walk: the same pages and payment walks fetched and JSON-parsed with plain
    httpx, one request at a time, no MCP."""
    async with httpx.AsyncClient(base_url=sb.base_url) as http:
        r = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(sb.config.client_id, sb.config.client_secret),
        )
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        t = time.perf_counter()
        after: str | None = None
        while True:
            params = {"limit": "100"} | ({"after": after} if after else {})
            page = (await http.get("/invoices", params=params, headers=headers)).raise_for_status().json()
            for inv in page["data"]:  # the same payment walks as the balance-aware summary, one at a time
                if inv["status"] == "partially_paid":
                    q = {"limit": "100", "invoice_id": inv["id"]}
                    (await http.get("/payments", params=q, headers=headers)).raise_for_status().json()
            if not page["has_next_page"] or not page["data"]:
                return time.perf_counter() - t
            after = page["end_cursor"]


async def summarize(sb: Sandbox, rate: float, *, warm: bool = False, balances: bool = True) -> Walk:
    """One stdio server process; summarize_invoices over everything; peak RSS read before closing."""
    before = set(child_pids())
    with stderr_sink(f"ledger-{sb.config.invoices}") as err:
        async with Client(stdio(our_params(server_env(sb, rate_limit=rate)), err)) as client:
            await client.list_tools()
            (pid,) = set(child_pids()) - before
            rss_start = proc_status_kb(pid, "VmHWM")
            if warm:  # token minted, customer names cached, the API's bucket refilled
                _checked(await client.call_tool("list_invoices", {"limit": 1}))
                await anyio.sleep(1.5 if sb.config.rate_limit else 0)
            sb.clear_log()
            t = time.perf_counter()
            args = ALL if balances else TOTALS_ONLY
            res = _checked(await client.call_tool("summarize_invoices", args, read_timeout_seconds=600))
            wall = time.perf_counter() - t
            peak = proc_status_kb(pid, "VmHWM")
    reqs = sb.requests()
    return Walk(
        invoices=sb.config.invoices,
        count=int(res.structured_content["count"]),
        wall=wall,
        pages=sum(1 for r in reqs if r.method == "GET" and r.path == "/invoices"),
        requests=len(reqs),
        statuses_429=sum(1 for r in reqs if r.status == 429),
        rss_start_kb=rss_start,
        peak_kb=peak,
        payment_requests=sum(1 for r in reqs if r.method == "GET" and r.path == "/payments"),
        partial=int(res.structured_content["by_status"].get("partially_paid", {}).get("count", 0)),
    )


def alternatives(sb: Sandbox) -> list[object]:
    """What bulk payment walks would cost for the same answer, from the sandbox's own data: a
    Payment carries no invoice id, so a bulk walk still has to guess which invoice it paid (by
    customer and due date); the guess is ambiguous where a customer has several invoices due the same day."""
    invoices = sb.invoices(include_archived=True)
    visible = [i for i in invoices if i["status"] != "archived"]
    partial = [i for i in visible if i["status"] == "partially_paid"]
    ok = [p for p in sb.payments() if p["status"] == "succeeded"]
    since = min(i["created_at"] for i in partial)
    one_walk = -(-sum(1 for p in ok if p["created_at"] >= since) // 100)
    per_customer = 0
    for cid in {i["customer_id"] for i in partial}:
        start = min(i["created_at"] for i in partial if i["customer_id"] == cid)
        n = sum(1 for p in ok if p["customer_id"] == cid and p["created_at"] >= start)
        per_customer += max(1, -(-n // 100))
    keys: dict[tuple[str, str], int] = {}
    for i in invoices:
        k = (i["customer_id"], i["due_date"][:10])
        keys[k] = keys.get(k, 0) + 1
    ambiguous = sum(1 for i in partial if keys[(i["customer_id"], i["due_date"][:10])] > 1)
    return [f"{len(visible):,}", len(partial), len(partial), one_walk, per_customer, ambiguous]


async def run() -> str:
    walks: list[Walk] = []
    for n in SIZES:
        with sandbox(invoices=n, rate_limit=None) as sb:
            w = await summarize(sb, rate=100_000, warm=True)
            assert w.count == len(sb.invoices(include_archived=False)), "summary count differs from the sandbox"
            w.direct = await direct_walk(sb)
            walks.append(w)
    base = walks[0]
    per1k_base = base.wall / base.count * 1000
    rows: list[list[object]] = []
    for w in walks:
        per1k = w.wall / w.count * 1000
        rows.append(
            [
                f"{w.invoices:,}",
                w.count,
                w.pages,
                w.payment_requests,
                w.requests,
                w.wall,
                per1k * 1e3,
                per1k / per1k_base,
                w.wall / w.direct,
                w.peak_kb / 1024,
                w.peak_kb / base.peak_kb,
                (w.peak_kb - w.rss_start_kb) / 1024,
            ]
        )
    big = walks[-1]
    flat = big.peak_kb / base.peak_kb
    out = [
        "### Unlimited API (sandbox rate_limit=None, AP_RATE_LIMIT=100000), one server per size, warmed by one "
        "list_invoices call; balance-aware summary",
        "",
        "floor = the same pages and payment walks fetched + JSON-parsed with plain httpx in the bench process, one "
        "at a time (no MCP, no models). "
        "Peak RSS = VmHWM of the stdio server process just before it is closed; growth = peak − VmHWM after "
        "start-up.",
        "",
        table(
            [
                "sandbox invoices",
                "summarized",
                "pages",
                "payment requests",
                "upstream requests",
                "wall s",
                "ms per 1k",
                "per 1k ÷ 1k run",
                "wall ÷ httpx floor",
                "peak RSS MB",
                f"peak ÷ {base.invoices // 1000}k run",
                "growth MB",
            ],
            rows,
        ),
        "",
        table(
            ["check", "measured", "result"],
            [
                [
                    f"peak RSS flat ({big.invoices // 1000}k ÷ {base.invoices // 1000}k ≤ 1.1)",
                    f"{flat:.2f}×",
                    verdict(flat <= 1.1),
                ],
                [
                    f"time linear (per-1k at {big.invoices // 1000}k ÷ per-1k at {base.invoices // 1000}k ≤ 1.2)",
                    f"{big.wall / big.count / per1k_base * 1000:.2f}×",
                    verdict(big.wall / big.count / per1k_base * 1000 <= 1.2),
                ],
            ],
        ),
    ]

    limited: list[list[object]] = []
    results: list[tuple[str, float]] = []
    ratios: list[list[object]] = []
    bulk: list[list[object]] = []
    for n in LIMITED_SIZES:
        with sandbox(invoices=n, rate_limit=None) as sb:
            bulk.append(alternatives(sb))
        for warm in (False, True):
            state = "warm (token + names cached)" if warm else "cold (first call: token + customer names)"
            pair: dict[bool, Walk] = {}
            for balances in (False, True):
                with sandbox(invoices=n, rate_limit=RATE) as sb:
                    w = pair[balances] = await summarize(sb, rate=RATE, warm=warm, balances=balances)
                floor = w.requests / RATE  # every upstream request of this summary, at the API's pace
                mode = "balances" if balances else "totals only"
                limited.append(
                    [
                        f"{n:,}",
                        state,
                        mode,
                        w.pages,
                        w.payment_requests,
                        w.requests,
                        w.statuses_429,
                        w.wall,
                        floor,
                        w.wall / floor,
                        w.pages / RATE,
                    ]
                )
                results.append((f"{n:,} invoices, {state.split(' ')[0]}, {mode}", w.wall / floor))
            ratio = pair[True].requests / pair[False].requests
            ratios.append(
                [
                    f"{n:,} invoices, {state.split(' ')[0]}",
                    pair[True].partial,
                    f"{pair[False].requests} → {pair[True].requests} (+{pair[True].payment_requests})",
                    f"{ratio:.2f}×",
                    verdict(ratio <= REQUEST_TARGET),
                ]
            )
    out += [
        "",
        f"### Rate-limited API (sandbox rate_limit={RATE:g}/s, AP_RATE_LIMIT={RATE:g})",
        "",
        "floor = this summary's own upstream requests ÷ 5 s (invoice pages, payment walks, token, names).",
        "",
        table(
            [
                "invoices",
                "server state",
                "summary",
                "invoice pages",
                "payment requests",
                "upstream requests",
                "429s",
                "wall s",
                "floor s (requests ÷ 5)",
                "wall ÷ floor",
                "pages ÷ 5 s",
            ],
            limited,
        ),
        "",
        table(
            ["target: wall within 1.1× its own request floor", "measured", "result"],
            [[name, f"{r:.2f}×", verdict(r <= TARGET)] for name, r in results],
        ),
        "",
        table(
            [
                f"target: balance-aware requests ≤ {REQUEST_TARGET:g}× totals-only",
                "partially paid invoices",
                "requests (totals → balances)",
                "measured",
                "result",
            ],
            ratios,
        ),
        "",
        "Bulk alternatives, counted from the sandbox's data (requests for the payments part only). A Payment "
        "has no invoice id, so only the per-invoice walk attributes money with certainty; the bulk walks would "
        "still need a per-invoice request for every ambiguous invoice (same customer, same due date).",
        "",
        table(
            [
                "visible invoices",
                "partially paid",
                "per invoice (used)",
                "one /payments?status=succeeded walk since the oldest",
                "/payments?customer_id walks",
                "ambiguous by (customer, due date)",
            ],
            bulk,
        ),
    ]
    return "\n".join(out)


def main() -> None:
    print("## Ledger walk (bench/ledger.py)\n")
    print(anyio.run(run))


if __name__ == "__main__":
    main()
