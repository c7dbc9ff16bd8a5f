"""Money that never crosses currencies, one bad payment that costs only itself, and one balance
rule that get_invoice, list rows and summaries agree on: real MCP sessions against a stand-in of
the API (httpx MockTransport) serving exactly the hostile ledger each case needs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
from mcp import Client

from invoice_mcp.api.client import APIClient
from invoice_mcp.api.settings import Settings
from invoice_mcp.server import build_server

from ..conftest import TODAY, text_of

pytestmark = pytest.mark.anyio

TOKEN = "tok_0123456789abcdefghijklmnopqrstuv"
AS_OF = TODAY.isoformat()


def inv(
    n: int, total: Any, status: str = "open", currency: str | None = "USD", due: str = "2026-10-01", cus: str = "cus_1"
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"inv_{n}",
        "invoice_number": f"INV-{n}",
        "customer_id": cus,
        "status": status,
        "total": total,
        "sub_total": total,
        "due_date": due,
        "created_at": "2026-09-01T10:00:00Z",
        "line_items": [],
    }
    if currency is not None:
        row["currency"] = currency
    return row


def pay(pid: str, amount: Any, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "customer_id": "cus_1",
        "status": status,
        "payment_method": "card",
        "created_at": "2026-10-05T10:00:00Z",
        "sub_total": amount,
        "total": amount,
        **extra,
    }


class Ledger:
    """A tiny API: invoices, their payments (served by invoice_id as the API filters them), customers.
    Payment pages are raw JSON text so that NaN and friends reach the client as the API would send them."""

    def __init__(self, invoices: list[dict[str, Any]], payments: dict[str, list[dict[str, Any]]]) -> None:
        self.invoices = invoices
        self.payments = payments
        self.requests: list[httpx.Request] = []

    def _page(self, rows: list[Any], after: str | None, size: int) -> str:
        start = int(after or 0)
        chunk = rows[start : start + size]
        more = start + size < len(rows)
        body = ",".join(r if isinstance(r, str) else json.dumps(r) for r in chunk)
        return f'{{"data":[{body}],"end_cursor":"{start + size}","has_next_page":{"true" if more else "false"}}}'

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        path, q = req.url.path, req.url.params
        if path == "/oauth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        if path == "/customers":
            return httpx.Response(200, json={"data": [{"id": "cus_1", "name": "Acme"}], "has_next_page": False})
        size = int(q.get("limit", "100"))
        if path == "/invoices":
            rows = [
                i
                for i in self.invoices
                if (not q.get("status") or i["status"] == q["status"])
                and (q.get("status") == "archived" or i["status"] != "archived")
                and (not q.get("invoice_number") or i["invoice_number"] == q["invoice_number"])
                and (not q.get("customer_id") or i["customer_id"] == q["customer_id"])
            ]
            return httpx.Response(200, content=self._page(rows, q.get("after"), size).encode())
        if path.startswith("/invoices/"):
            found = [i for i in self.invoices if i["id"] == path.split("/")[2]]
            return httpx.Response(200, json=found[0]) if found else httpx.Response(404, json={"message": "no"})
        if path == "/payments":
            if q.get("invoice_id"):
                rows = list(self.payments.get(q["invoice_id"], []))
            else:
                rows = [p for ps in self.payments.values() for p in ps]
            return httpx.Response(200, content=self._page(rows, q.get("after"), size).encode())
        return httpx.Response(404, json={"message": "no such route"})

    def payment_requests(self) -> list[str]:
        return [r.url.params.get("invoice_id", "") for r in self.requests if r.url.path == "/payments"]


async def _no_sleep(_: float) -> None:
    return None


@asynccontextmanager
async def session(api: Ledger) -> AsyncIterator[Client]:
    settings = Settings(client_id="cid", client_secret="cs_" + "x" * 20, base_url="http://api.test", rate_limit=1000)  # type: ignore[arg-type]

    def factory(s: Settings) -> APIClient:
        return APIClient(s, transport=httpx.MockTransport(api), sleep=_no_sleep)

    async with Client(build_server(settings, client_factory=factory)) as c:
        yield c


async def call(c: Client, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    r = await c.call_tool(tool, args)
    text = text_of(r)
    assert not r.is_error, text
    assert "Traceback" not in text
    assert r.structured_content is not None
    return r.structured_content, text


def dec(v: Any) -> Decimal:
    return Decimal(str(v))


def row_balance(listed: dict[str, Any], text: str, number: str) -> Decimal:
    """What a list row says is still owed, in both views (they must agree): the chunk's `balances`
    (structured) and `owes` (text) where it is not the row's total."""
    cols = listed["cols"]
    (row,) = [r for r in listed["rows"] if r[0] == number]
    structured = dec((listed.get("balances") or {}).get(number, row[cols.index("total")]))
    (line,) = [ln for ln in text.splitlines() if ln.startswith(number + " ")]
    owes = line.split(" owes $")[1].split(" ")[0] if " owes $" in line else line.split(" $")[1].split(" ")[0]
    assert dec(owes) == structured, line
    return structured


# -- currencies ------------------------------------------------------------------------------------


async def test_summary_groups_money_by_currency_and_never_adds_them() -> None:
    api = Ledger(
        [
            inv(1, 1000, "open"),
            inv(2, 500, "partially_paid"),
            inv(3, 50000, "open", currency="EUR"),
            inv(4, 100, "paid", currency="EUR"),
        ],
        {"inv_2": [pay("pay_usd", 200), pay("pay_eur", 300, currency="EUR")]},
    )
    async with session(api) as c:
        s, text = await call(c, "summarize_invoices", {"as_of": AS_OF})
    assert s["currency"] == "USD"
    assert dec(s["total"]) == 1500 and dec(s["unpaid"]["total"]) == 1500
    # the EUR payment is not applied to the USD invoice: only the USD $200 is
    assert dec(s["unpaid"]["balance"]) == 1300
    assert dec(s["by_customer"][0]["balance"]) == 1300
    eur = s["other_currencies"]["EUR"]
    assert dec(eur["total"]) == 50100 and dec(eur["unpaid"]["balance"]) == 50000
    assert dec(eur["aging"]["31-60"]["balance"]) == 50000
    assert dec(eur["by_customer"][0]["balance"]) == 50000
    assert "51,100" not in text and "EUR,USD" not in text
    assert "total $1,500.00 USD" in text
    assert "EUR: 2 invoices, total 50,100.00 EUR" in text
    assert "1 payment in another currency than its invoice" in text and "pay_eur" in text


async def test_a_single_currency_answer_says_its_currency_in_both_views() -> None:
    api = Ledger([inv(1, 1000, "open", currency="EUR"), inv(2, 250, "overdue", currency="EUR")], {})
    async with session(api) as c:
        s, text = await call(c, "summarize_invoices", {"as_of": AS_OF})
        listed, ltext = await call(c, "list_invoices", {"limit": 5})
        d, dtext = await call(c, "get_invoice", {"invoice": "INV-1"})
    assert s["currency"] == "EUR" and "other_currencies" not in s
    assert "total 1,250.00 EUR" in text and "$" not in text.split("\n")[0]
    assert listed["currency"] == "EUR" and "sum 1,250.00 EUR" in ltext
    assert d["currency"] == "EUR" and "total 1,000.00 EUR" in dtext


async def test_a_list_chunk_over_two_currencies_sums_each_apart() -> None:
    api = Ledger([inv(1, 1000, "open"), inv(2, 700, "open", currency="EUR")], {})
    async with session(api) as c:
        listed, text = await call(c, "list_invoices", {"limit": 5})
    assert listed["currency"] == "USD" and dec(listed["sum"]) == 1000
    assert "sum $1,000.00 USD + 700.00 EUR" in text
    assert "1700" not in text and "1,700" not in text
    assert "INV-2 «Acme» open 700.00 EUR" in text


async def test_get_invoice_applies_only_payments_of_its_currency() -> None:
    api = Ledger([inv(2, 500, "partially_paid")], {"inv_2": [pay("pay_usd", 200), pay("pay_eur", 300, currency="EUR")]})
    async with session(api) as c:
        d, text = await call(c, "get_invoice", {"invoice": "INV-2"})
    assert dec(d["amount_paid"]) == 200 and dec(d["balance_due"]) == 300
    assert any("pay_eur" in n and "EUR" in n for n in d["payment_issues"])
    assert "pay_eur" in text and "not applied" in text


# -- one bad payment costs that payment ------------------------------------------------------------

BAD_AMOUNTS = ["NaN", '"twelve"', "true", '{"value": 5}', "1e30", "Infinity", "[1]"]


@pytest.mark.parametrize("raw", BAD_AMOUNTS)
async def test_an_unusable_payment_amount_costs_that_payment_not_the_account(raw: str) -> None:
    bad = (
        f'{{"id":"pay_bad","customer_id":"cus_1","status":"succeeded","payment_method":"card",'
        f'"created_at":"2026-10-06T10:00:00Z","sub_total":{raw},"total":{raw},'
        f'"fees":[{{"amount":{raw},"covered_by_customer":{raw},"name":"fee","type":"FT_METHOD"}}]}}'
    )
    api = Ledger([inv(2, 500, "partially_paid")], {"inv_2": [bad, pay("pay_ok", 200)]})  # type: ignore[list-item]
    async with session(api) as c:
        s, stext = await call(c, "summarize_invoices", {"as_of": AS_OF})
        p, ptext = await call(c, "list_payments", {})
        d, dtext = await call(c, "get_invoice", {"invoice": "INV-2"})
    assert dec(s["unpaid"]["balance"]) == 300  # the good payment still counts
    assert "1 payment with an unusable amount (not counted): pay_bad" in stext
    assert p["count"] == 2 and dec(p["collected"]) == 200
    assert "1 payment with an unusable amount (not counted): pay_bad" in ptext
    assert dec(d["amount_paid"]) == 200 and dec(d["balance_due"]) == 300
    assert any("pay_bad" in n for n in d["payment_issues"]) and "pay_bad" in dtext


@pytest.mark.parametrize("raw", ['{"s": 1}', "true", "7"])
async def test_an_unusable_payment_status_is_named_not_dropped(raw: str) -> None:
    bad = (
        f'{{"id":"pay_odd","customer_id":"cus_1","status":{raw},"payment_method":"card",'
        '"created_at":"2026-10-06T10:00:00Z","sub_total":100,"total":100}'
    )
    api = Ledger([inv(2, 500, "partially_paid")], {"inv_2": [bad, pay("pay_ok", 200)]})  # type: ignore[list-item]
    async with session(api) as c:
        s, stext = await call(c, "summarize_invoices", {"as_of": AS_OF})
        d, dtext = await call(c, "get_invoice", {"invoice": "INV-2"})
    assert dec(s["unpaid"]["balance"]) == 300
    assert "unknown status" in stext and "not counted" in stext
    assert dec(d["balance_due"]) == 300 and any("status" in n for n in d["payment_issues"])
    assert "pay_odd" in dtext and any("pay_odd" in n for n in s["payment_issues"])


# -- one balance rule ------------------------------------------------------------------------------


async def _three_views(api: Ledger, number: str) -> tuple[Decimal, Decimal, Decimal, str]:
    async with session(api) as c:
        d, dtext = await call(c, "get_invoice", {"invoice": number})
        s, _ = await call(c, "summarize_invoices", {"as_of": AS_OF})
        listed, ltext = await call(c, "list_invoices", {"limit": 10})
    return dec(d["balance_due"]), dec(s["unpaid"]["balance"]), row_balance(listed, ltext, number), dtext


async def test_overdue_with_money_received_agrees_everywhere_and_says_why() -> None:
    api = Ledger([inv(7, 1000, "overdue")], {"inv_7": [pay("pay_400", 400)]})
    got, summary, row, text = await _three_views(api, "INV-7")
    assert got == summary == row == 1000
    assert "status «overdue» says nothing was applied" in text and "$400.00" in text


async def test_fully_paid_but_still_open_agrees_everywhere_and_says_why() -> None:
    api = Ledger([inv(8, 500, "open")], {"inv_8": [pay("pay_all", 500)]})
    got, summary, row, text = await _three_views(api, "INV-8")
    assert got == summary == row == 500
    assert "status «open» says nothing was applied" in text


async def test_a_negative_payment_is_reported_and_counts_nothing() -> None:
    api = Ledger([inv(9, 1000, "partially_paid")], {"inv_9": [pay("pay_neg", -300), pay("pay_ok", 100)]})
    got, summary, row, text = await _three_views(api, "INV-9")
    assert got == summary == row == 900
    assert "pay_neg" in text and "unusable amount" in text


@pytest.mark.parametrize("status", ["completed", "paid", "settled"])
async def test_unknown_payment_statuses_are_reported_never_silently_zero(status: str) -> None:
    api = Ledger([inv(5, 1000, "partially_paid")], {"inv_5": [pay("pay_x", 600, status=status), pay("pay_y", 100)]})
    async with session(api) as c:
        d, dtext = await call(c, "get_invoice", {"invoice": "INV-5"})
        s, stext = await call(c, "summarize_invoices", {"as_of": AS_OF})
        p, ptext = await call(c, "list_payments", {})
    assert dec(d["balance_due"]) == dec(s["unpaid"]["balance"]) == 900
    assert f"unknown status «{status}»" in dtext and "not counted" in dtext
    assert any(status in n for n in d["payment_issues"])
    assert f"«{status}»" in stext and f"«{status}»" in ptext
    assert any(status in n for n in p["payment_issues"]) and dec(p["collected"]) == 100


async def test_the_per_invoice_payment_cap_says_it_was_reached() -> None:
    many = [pay(f"pay_{i}", 1) for i in range(1500)]
    api = Ledger([inv(6, 2000, "partially_paid")], {"inv_6": many})
    async with session(api) as c:
        d, dtext = await call(c, "get_invoice", {"invoice": "INV-6"})
        s, stext = await call(c, "summarize_invoices", {"as_of": AS_OF})
    assert dec(d["amount_paid"]) == 1000
    assert any("1,000" in n and "limit" in n for n in d["payment_issues"])
    assert "more payments than the 1,000 read" in dtext
    assert "more payments than the 1,000 read" in stext and "INV-6" in stext
    assert any("INV-6" in n for n in s["payment_issues"])
