"""Past due as a figure: one summary call gives the past-due balance and count overall, per status
and per customer (against as_of, like the aging buckets), and ranks customers by it; list rows
carry what is still owed. Checked against balances computed here from the sandbox's raw data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox

from ..conftest import text_of
from .test_money import APART, SETTLED, dec, succeeded

pytestmark = pytest.mark.anyio

AS_OF = date(2026, 11, 1)


def past_due_oracle(sb: Sandbox, as_of: date) -> dict[str, Any]:
    pays = sb.payments_by_invoice()
    overall = Decimal("0")
    count = 0
    per_status: dict[str, Decimal] = {}
    per_customer: dict[str, Decimal] = {}
    for inv in sb.invoices(include_archived=False):
        if inv["status"] in SETTLED or inv["status"] in APART:
            continue
        if (as_of - date.fromisoformat(inv["due_date"][:10])).days <= 0:
            continue
        owed = dec(inv["total"]) - min(succeeded(pays.get(inv["id"], [])), dec(inv["total"]))
        overall += owed
        count += 1
        per_status[inv["status"]] = per_status.get(inv["status"], Decimal("0")) + owed
        per_customer[inv["customer_id"]] = per_customer.get(inv["customer_id"], Decimal("0")) + owed
    return {"balance": overall, "count": count, "per_status": per_status, "per_customer": per_customer}


async def test_one_summary_gives_past_due_overall_per_status_and_per_customer(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    want = past_due_oracle(sandbox, AS_OF)
    r = await mcp_client.call_tool("summarize_invoices", {"as_of": AS_OF.isoformat(), "top": 50})
    assert not r.is_error, text_of(r)
    got = r.structured_content
    assert got is not None
    assert want["count"] > 0 and got["past_due"]["count"] == want["count"]
    assert dec(got["past_due"]["balance"]) == want["balance"]
    late_buckets = sum(dec(b["balance"]) for k, b in got["aging"].items() if k != "current")
    assert late_buckets == want["balance"]  # the same count as the aging buckets
    assert dec(got["unpaid"]["past_due"]) == want["balance"]
    for status, amount in want["per_status"].items():
        assert dec(got["by_status"][status]["past_due"]) == amount, status
    # a partly paid past-due invoice sits under partially_paid, and still counts as past due
    assert dec(got["by_status"]["partially_paid"]["past_due"]) > 0
    assert got["by_status"]["paid"].get("past_due") is None
    per_customer = {c["customer_id"]: dec(c["past_due"]) for c in got["by_customer"]}
    assert {k: v for k, v in per_customer.items() if v} == want["per_customer"]
    text = text_of(r)
    assert f"past due (due before {AS_OF}): ${want['balance']:,.2f} ({want['count']} invoices)" in text


async def test_customers_ranked_by_past_due_with_one_argument(mcp_client: Client, sandbox: Sandbox) -> None:
    want = past_due_oracle(sandbox, AS_OF)["per_customer"]
    r = await mcp_client.call_tool("summarize_invoices", {"as_of": AS_OF.isoformat(), "rank": "past_due", "top": 3})
    got = r.structured_content
    assert got is not None
    ranked = sorted(want.items(), key=lambda kv: kv[1], reverse=True)[:3]
    assert [(c["customer_id"], dec(c["past_due"])) for c in got["by_customer"]] == ranked
    assert "top past due: " in text_of(r)
    by_balance = await mcp_client.call_tool("summarize_invoices", {"as_of": AS_OF.isoformat(), "top": 3})
    assert by_balance.structured_content is not None
    balances = [dec(c["balance"]) for c in by_balance.structured_content["by_customer"]]
    assert balances == sorted(balances, reverse=True)


async def test_list_rows_say_what_partly_paid_invoices_still_owe(mcp_client: Client, sandbox: Sandbox) -> None:
    pays = sandbox.payments_by_invoice()
    r = await mcp_client.call_tool("list_invoices", {"limit": 100, "status": "partially_paid"})
    assert not r.is_error, text_of(r)
    got = r.structured_content
    assert got is not None and got["rows"]
    by_number = {i["invoice_number"]: i for i in sandbox.invoices()}
    text = text_of(r)
    owed = Decimal("0")
    for row in got["rows"]:
        inv = by_number[row[0]]
        balance = dec(inv["total"]) - succeeded(pays.get(inv["id"], []))
        owed += balance
        assert dec(got["balances"][row[0]]) == balance
        assert f" owes ${balance}" in next(ln for ln in text.splitlines() if ln.startswith(row[0] + " "))
    assert dec(got["owed"]) == owed < dec(got["sum"])
    assert f"owed ${owed:,.2f}" in text.splitlines()[0]


async def test_rows_without_access_to_payments_say_their_balance_is_unknown(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    sandbox.faults.fail_next(1000, 403, path="/payments", body={"code": "forbidden", "message": "missing scope"})
    r = await mcp_client.call_tool("list_invoices", {"limit": 100, "status": "partially_paid"})
    assert not r.is_error, text_of(r)
    text = text_of(r)
    assert "balances of partly paid rows unknown (payments could not be read" in text and "missing scope" in text
    got = r.structured_content
    assert got is not None and got.get("owed") is None
    assert all(v is None for v in got["balances"].values()) and len(got["balances"]) == len(got["rows"])
    assert " owes $?" in text
