"""Assistant tasks against the sandbox: the minimal calls a model needs, the answer checked
against the sandbox's own data, and the o200k tokens the model reads in each kind of host
(text only; structured only, as Claude Code; both).

Follow-up calls are taken from the *text* of the previous result (the next call is written
there exactly), so every task is doable by a model that sees only the text.

Run: .venv/bin/python bench/tasks.py
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from _common import TODAY, sandbox, settings_for, table, verdict
from counting import HOSTS, raw_tokens, seen, text_of, tok, tools_list_tokens
from mcp import Client

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

AS_OF = TODAY.isoformat()
SETTLED = {"paid", "void", "voided", "canceled", "cancelled", "uncollectible", "written_off", "written-off", "draft"}
_NEXT = re.compile(r'^next: list_invoices\(cursor="([A-Za-z0-9_-]+)"(?:, limit=(\d+))?\)$', re.M)
_ROW = re.compile(r"^(INV-\d+) «", re.M)


@dataclass
class Run:
    """One task's calls and what the model read from them."""

    client: Client
    rows_in: str = "both"
    calls: list[str] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HOSTS, 0))
    chars: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HOSTS, 0))

    async def call(self, tool: str, args: dict[str, Any]) -> Any:
        res = await self.client.call_tool(tool, args)
        if res.is_error:
            raise AssertionError(f"{tool}({args}) failed: {text_of(res)}")
        self.calls.append(tool)
        for host in HOSTS:
            self.read[host] += tok(seen(res, host))
            self.chars[host] += len(seen(res, host))
        return res

    def read_list(self, res: Any) -> tuple[list[str], dict[str, Any] | None]:
        """Invoice numbers and the next call, read from the text (or from the structured
        content when the server keeps the rows only there)."""
        if self.rows_in == "structured":
            data = res.structured_content
            m = re.search(r"limit=(\d+)", data["hint"])
            if "next_cursor" not in data:
                return [row[0] for row in data["rows"]], None
            return [row[0] for row in data["rows"]], {"cursor": data["next_cursor"]} | (
                {"limit": int(m.group(1))} if m else {}
            )
        text = text_of(res)
        found = _NEXT.search(text)
        if not found:
            return _ROW.findall(text), None
        return _ROW.findall(text), {"cursor": found.group(1)} | (
            {"limit": int(found.group(2))} if found.group(2) else {}
        )

    async def walk(self, args: dict[str, Any]) -> list[str]:
        """A whole list, following the next call the result gives."""
        numbers: list[str] = []
        nxt: dict[str, Any] | None = args
        while nxt is not None:
            got, nxt = self.read_list(await self.call("list_invoices", nxt))
            numbers += got
        return numbers


def owed(inv: dict[str, Any]) -> bool:
    return inv["status"] not in SETTLED and inv["status"] != "archived"


def late(inv: dict[str, Any]) -> int:
    return (TODAY - dt.date.fromisoformat(inv["due_date"][:10])).days


def money(values: list[Any]) -> Decimal:
    return sum((Decimal(str(v)) for v in values), Decimal("0"))


def dollars(text: str, label: str) -> Decimal:
    m = re.search(re.escape(label) + r" \$([\d,]+\.\d\d)", text)
    assert m, f"{label!r} not in {text[:300]!r}"
    return Decimal(m.group(1).replace(",", ""))


Task = Callable[[Run, Sandbox], Awaitable[tuple[str, list[dict[str, Any]]]]]
"""Does the task; returns the answer (for the table) and the API objects a raw-JSON client would read."""


def count(text: str, label: str) -> int:
    m = re.search(re.escape(label) + r" \$[\d,]+\.\d\d(?: \(of \$[\d,]+\.\d\d\))? \((\d+) invoices?\)", text)
    assert m, f"{label!r} with a labelled count not in {text[:300]!r}"
    return int(m.group(1))


def balances(sb: Sandbox) -> dict[str, Decimal]:
    """Owed balance per invoice id: total less succeeded payments (the sandbox's own link)."""
    paid = {
        inv_id: sum((Decimal(str(p["sub_total"])) for p in ps if p["status"] == "succeeded"), Decimal("0"))
        for inv_id, ps in sb.payments_by_invoice().items()
    }
    return {
        i["id"]: Decimal(str(i["total"])) - paid.get(i["id"], Decimal("0"))
        for i in sb.invoices(include_archived=False)
        if owed(i)
    }


async def owes(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    cust = next(c for c in sb.customers() if c["name"] == "Granite State Engineering")
    text = text_of(await r.call("summarize_invoices", {"customer": cust["name"], "as_of": AS_OF}))
    mine = [i for i in sb.invoices(include_archived=False) if i["customer_id"] == cust["id"]]
    unpaid = [i for i in mine if owed(i)]
    bal = balances(sb)
    assert dollars(text, "owed: balance") == sum((bal[i["id"]] for i in unpaid), Decimal("0"))
    assert count(text, "owed: balance") == len(unpaid)
    late_n = sum(count(text, f"{b} days") for b in ("1-30", "31-60", "61-90", "90+"))
    assert late_n == len([i for i in unpaid if late(i) > 0])
    past_due = dollars(text, f"past due (due before {AS_OF}):")  # one figure, no adding of buckets
    assert past_due == sum((bal[i["id"]] for i in unpaid if late(i) > 0), Decimal("0"))
    return f"owes ${dollars(text, 'owed: balance'):,}, ${past_due:,} past due ({late_n} invoices)", mine


async def top_debtors(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    text = text_of(await r.call("summarize_invoices", {"top": 3, "as_of": AS_OF}))
    live = sb.invoices(include_archived=False)
    names = {c["id"]: c["name"] for c in sb.customers()}
    bal = balances(sb)
    per: dict[str, Decimal] = {}
    for i in live:
        if owed(i):
            per[names[i["customer_id"]]] = per.get(names[i["customer_id"]], Decimal("0")) + bal[i["id"]]
    want = sorted(per, key=lambda n: per[n], reverse=True)[:3]
    got = re.findall(r"«([^»]+)» \$", text.split("top balances: ", 1)[1])
    assert got == want, (got, want)
    return ", ".join(want), live


async def over_60(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    got = await r.walk({"min_days_past_due": 60, "as_of": AS_OF})
    live = sb.invoices(include_archived=False)
    want = [i["invoice_number"] for i in live if owed(i) and late(i) >= 60]
    assert got == want
    return f"{len(got)} invoices", live


async def last_month(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    month_end = TODAY.replace(day=1) - dt.timedelta(days=1)
    start, end = month_end.replace(day=1).isoformat(), month_end.isoformat()
    text = text_of(await r.call("summarize_invoices", {"created_at_start": start, "created_at_end": end}))
    mine = [i for i in sb.invoices(include_archived=False) if start <= i["created_at"][:10] <= end]
    total = money([i["total"] for i in mine])
    assert text.startswith(f"{len(mine)} invoices, total ${total:,}")
    return f"{len(mine)} invoices, ${total:,}", mine


async def is_paid(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    inv = next(i for i in sb.invoices(include_archived=False) if i["invoice_number"] == "INV-1250")
    res = await r.call("get_invoice", {"invoice": "INV-1250"})
    assert f"| {inv['status']} |" in text_of(res)
    return inv["status"], [inv]


async def latest_with_lines(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    cust = next(c for c in sb.customers() if c["name"] == "Acme Dental Group")
    number = r.read_list(await r.call("list_invoices", {"customer": cust["name"], "limit": 1}))[0][0]
    detail = text_of(await r.call("get_invoice", {"invoice": number}))
    inv = next(i for i in sb.invoices(include_archived=False) if i["customer_id"] == cust["id"])
    assert number == inv["invoice_number"]
    assert len([ln for ln in detail.splitlines() if ln.startswith("- «")]) == len(inv["line_items"])
    return f"{number}, {len(inv['line_items'])} lines", [inv, inv]


async def memo_search(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    got = await r.walk({"text": "per sow"})
    live = sb.invoices(include_archived=False)
    want = [i["invoice_number"] for i in live if "per sow" in (i.get("memo") or "").lower()]
    assert got == want
    return f"{len(got)} invoices", live


async def create_with_preview(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    found = text_of(await r.call("find_customers", {"name": "northwind"}))
    cid = re.search(r"customer_id (\S+)", found).group(1)  # type: ignore[union-attr]
    args = {"customer_id": cid, "line_items": [{"description": "Firewall management", "amount": 150, "quantity": 2}]}
    preview = text_of(await r.call("create_invoice", args | {"dry_run": True}))
    assert "Total $300.00" in preview and not sb.requests("POST", "/invoices")
    created = text_of(await r.call("create_invoice", args))
    number = re.search(r"Created (INV-\d+)", created).group(1)  # type: ignore[union-attr]
    inv = next(i for i in sb.invoices() if i["invoice_number"] == number)
    assert inv["total"] == 300 and inv["customer_id"] == cid
    return number, [inv]


async def archive(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    inv = next(i for i in sb.invoices(include_archived=False) if i["status"] == "open")
    text = text_of(await r.call("archive_invoice", {"invoice": inv["invoice_number"]}))
    assert "restore_invoice(" in text
    assert next(i for i in sb.invoices() if i["id"] == inv["id"])["status"] == "archived"
    return inv["invoice_number"], [inv]


async def restore(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    inv = next(i for i in sb.invoices() if i["status"] == "archived")
    await r.call("restore_invoice", {"invoice": inv["invoice_number"]})
    now = next(i for i in sb.invoices() if i["id"] == inv["id"])
    assert now["status"] != "archived"
    return f"{inv['invoice_number']} → {now['status']}", [inv]


async def everything_of_customer(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    cust = next(c for c in sb.customers() if c["name"] == "Blue Harbor Logistics")
    got = await r.walk({"customer": cust["name"]})
    mine = [i for i in sb.invoices(include_archived=False) if i["customer_id"] == cust["id"]]
    assert got == [i["invoice_number"] for i in mine]
    return f"{len(got)} invoices", mine


async def pay_link_of_paid(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    inv = next(i for i in sb.invoices(include_archived=False) if i["status"] == "paid")
    text = text_of(await r.call("get_invoice_payment_link", {"invoice": inv["invoice_number"]}))
    assert text.startswith(f"WARNING: {inv['invoice_number']} is already paid")
    return "warned: already paid", [inv]


async def past_due_ranked(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    res = await r.call("summarize_invoices", {"rank": "past_due", "top": 3, "as_of": AS_OF})
    text = text_of(res)
    live = sb.invoices(include_archived=False)
    names = {c["id"]: c["name"] for c in sb.customers()}
    bal = balances(sb)
    per: dict[str, Decimal] = {}
    for i in live:
        if owed(i) and late(i) > 0:
            per[names[i["customer_id"]]] = per.get(names[i["customer_id"]], Decimal("0")) + bal[i["id"]]
    want = sorted(per, key=lambda n: per[n], reverse=True)[:3]
    got = re.findall(r"«([^»]+)» \$", text.split("top past due: ", 1)[1])
    assert got == want, (got, want)
    assert dollars(text, f"past due (due before {AS_OF}):") == sum(per.values(), Decimal("0"))
    return ", ".join(want), live


async def over_60_owed(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    """Past 60 days, with what is still owed on each: the rows carry it (no get_invoice per row)."""
    res = await r.call("list_invoices", {"min_days_past_due": 60, "as_of": AS_OF, "limit": 100})
    live = sb.invoices(include_archived=False)
    bal = balances(sb)
    want = [i for i in live if owed(i) and late(i) >= 60]
    owed_total = sum((bal[i["id"]] for i in want), Decimal("0"))
    if r.rows_in == "structured":  # the rows are only in the structured content
        data = res.structured_content
        got = {row[0]: Decimal(str((data.get("balances") or {}).get(row[0], row[3]))) for row in data["rows"]}
        assert Decimal(str(data["owed"])) == owed_total
    else:
        text = text_of(res)
        got = {}
        for ln in text.splitlines():
            if _ROW.match(ln):
                amount = ln.split(" owes $")[1] if " owes $" in ln else ln.split(" $")[1]
                got[ln.split(" ", 1)[0]] = Decimal(amount.split(" ")[0])
        assert f"owed ${owed_total:,.2f}" in text.splitlines()[0]
    assert got == {i["invoice_number"]: bal[i["id"]] for i in want}
    assert list(got) == [i["invoice_number"] for i in want]
    return f"{len(want)} invoices, ${owed_total:,} owed", want


async def preview_warns(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    """A preview identical to the invoice created a moment ago (create_with_preview) warns."""
    found = text_of(await r.call("find_customers", {"name": "northwind"}))
    cid = re.search(r"customer_id (\S+)", found).group(1)  # type: ignore[union-attr]
    args = {"customer_id": cid, "line_items": [{"description": "Firewall management", "amount": 150, "quantity": 2}]}
    text = text_of(await r.call("create_invoice", args | {"dry_run": True}))
    number = re.search(r"possible duplicate: invoice (INV-\d+)", text)
    assert number, text[:300]
    inv = next(i for i in sb.invoices() if i["invoice_number"] == number.group(1))
    return f"warned: {number.group(1)}", [inv]


async def empty_search(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    res = await r.call("list_invoices", {"text": "migration"})
    text = res.structured_content["scope"] if r.rows_in == "structured" else text_of(res)
    live = sb.invoices(include_archived=False)
    names = {c["id"]: c["name"] for c in sb.customers()}
    hits = [
        i
        for i in live
        if "migration" in " ".join([i.get("memo") or "", *(li["description"] for li in i["line_items"])]).lower()
        or "migration" in names[i["customer_id"]].lower()
    ]
    assert not hits and (r.rows_in == "structured" or text.startswith("no invoices match"))
    assert f"{len(live)} invoices scanned" in text and "memo, line item descriptions and customer name" in text
    return f"none, {len(live)} scanned", live


async def payments_money(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    res = await r.call("list_payments", {"limit": 25})
    text = text_of(res)
    pays = sb.payments()[:25]
    ok = [p for p in pays if p["status"] == "succeeded"]
    applied = money([p["sub_total"] for p in ok])
    charged = money([p["total"] for p in ok])
    assert f"applied to invoices ${applied:,.2f}, charged ${charged:,.2f}" in text and "Words: " in text
    return f"applied ${applied:,}, charged ${charged:,}", []


async def failed_unpaid(r: Run, sb: Sandbox) -> tuple[str, list[dict[str, Any]]]:
    """Invoices with a failed payment attempt that are still unpaid: one call, exact against the
    sandbox's own invoice -> payments link (never matched by amounts)."""
    res = await r.call("list_invoices", {"failed_payment": True, "unpaid": True, "limit": 100, "as_of": AS_OF})
    live = sb.invoices(include_archived=False)
    pays = sb.payments_by_invoice()
    want = [i for i in live if owed(i) and any(p["status"] == "failed" for p in pays.get(i["id"], []))]
    got, nxt = r.read_list(res)
    assert nxt is None, "more than one chunk"
    assert got == [i["invoice_number"] for i in want], (got, [i["invoice_number"] for i in want])
    bal = balances(sb)
    owed_total = sum((bal[i["id"]] for i in want), Decimal("0"))
    if r.rows_in == "structured":
        assert Decimal(str(res.structured_content["owed"])) == owed_total
    else:
        assert f"owed ${owed_total:,.2f}" in text_of(res).splitlines()[0]
    attempts = [p for i in want for p in pays[i["id"]] if p["status"] == "failed"]
    return f"{len(want)} invoices, ${owed_total:,} owed", [*want, *attempts]


TASKS: list[tuple[str, Task]] = [
    ("what does Granite State Engineering owe, how much past due", owes),
    ("top 3 debtors", top_debtors),
    ("invoices 60+ days past due", over_60),
    ("what was invoiced last month", last_month),
    ("is INV-1250 paid", is_paid),
    ("latest invoice of Acme Dental Group with its lines", latest_with_lines),
    ("memo search: 'per SOW'", memo_search),
    ("create an invoice with a preview first", create_with_preview),
    ("archive an open invoice", archive),
    ("restore an archived invoice", restore),
    ("everything of Blue Harbor Logistics", everything_of_customer),
    ("payment link of a paid invoice", pay_link_of_paid),
    ("customers ranked by past due", past_due_ranked),
    ("60+ days past due, with what is still owed", over_60_owed),
    ("a preview identical to a recent invoice", preview_warns),
    ("text search with nothing found (trust the zero)", empty_search),
    ("payments: applied, charged, fees, refunds", payments_money),
    ("invoices with a failed payment attempt, still unpaid", failed_unpaid),
]


async def run_tasks(rows_in: str) -> tuple[list[list[object]], int, int]:
    """Every task on a fresh sandbox; returns the table rows, tools/list tokens and failures."""
    rows: list[list[object]] = []
    failures = 0
    with sandbox(invoices=300) as sb:
        settings = settings_for(sb).model_copy(update={"list_rows": rows_in})
        async with Client(build_server(settings)) as client:
            tools = tools_list_tokens((await client.list_tools()).tools)
            for name, task in TASKS:
                r = Run(client, rows_in)
                try:
                    answer, raw = await task(r, sb)
                    ok = True
                except AssertionError as exc:
                    answer, raw, ok = f"FAILED: {str(exc)[:80]}", [], False
                    failures += 1
                rows.append(
                    [
                        name,
                        len(r.calls),
                        " → ".join(r.calls),
                        r.read["text"],
                        r.read["structured"],
                        r.read["both"],
                        raw_tokens(raw),
                        answer,
                        verdict(ok),
                        r.chars["text"],
                        r.chars["structured"],
                    ]
                )
    return rows, tools, failures


async def run() -> str:
    rows, tools, failures = await run_tasks("both")
    totals: list[list[object]] = []
    for rows_in in ("both", "text", "structured"):
        got, _, failed = (rows, tools, failures) if rows_in == "both" else await run_tasks(rows_in)
        failures += failed if rows_in != "both" else 0
        raw = sum(int(str(r[6])) for r in got)
        sums = [sum(int(str(r[i])) for r in got) for i in (3, 4, 5)]
        calls = sum(int(str(r[1])) for r in got)
        chars = [sum(int(str(r[i])) for r in got) for i in (9, 10)]
        totals.append(
            [f"INVOICE_MCP_LIST_ROWS={rows_in}", calls, *sums, raw, *(f"{n / raw:.3f}" for n in sums), *chars]
        )
    out = [
        "### Assistant tasks (bench/tasks.py)",
        "",
        f"Sandbox: 300 invoices, 12 customers, today {TODAY}. Tokens (o200k) the model reads from the results, "
        "by host: text = text blocks only (most hosts); structured = JSON of structuredContent only (Claude Code); "
        "both = a host that shows both. raw = the API JSON of the invoices the task had to read (what a raw-JSON "
        f"server would hand over). tools/list: {tools:,} tokens, once per session. Default settings.",
        "",
        table(
            [
                "task",
                "calls",
                "tools",
                "text",
                "structured",
                "both",
                "raw JSON",
                "answer",
                "checked",
                "text chars",
                "structured chars",
            ],
            rows,
        ),
        "",
        "All tasks, by where list_invoices puts its rows (INVOICE_MCP_LIST_ROWS; default both):",
        "",
        table(
            [
                "setting",
                "calls",
                "text",
                "structured",
                "both",
                "raw JSON",
                "text ÷ raw",
                "structured ÷ raw",
                "both ÷ raw",
                "text chars",
                "structured chars",
            ],
            totals,
        ),
    ]
    if failures:
        out.append(f"\n{failures} task(s) FAILED")
    return "\n".join(out)


def main() -> None:
    print(anyio.run(run))


if __name__ == "__main__":
    main()
