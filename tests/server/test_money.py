"""Money truth through MCP sessions against the sandbox over real HTTP: payments on get_invoice,
balances in summaries (checked against totals computed here from the sandbox's raw data), the
settled set, and what it costs upstream."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox

from ..conftest import text_of

pytestmark = pytest.mark.anyio

SETTLED = {"paid", "void", "voided", "canceled", "cancelled", "uncollectible", "written_off", "written-off"}
APART = {"draft", "archived"}
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


def dec(v: object) -> Decimal:
    return Decimal(str(v))


def succeeded(payments: list[dict[str, Any]]) -> Decimal:
    """Independent rule: money that arrived and stayed = sub_total of status 'succeeded'."""
    return sum((dec(p["sub_total"]) for p in payments if p["status"] == "succeeded"), Decimal("0"))


def bucket(due: str, as_of: date) -> str:
    late = (as_of - date.fromisoformat(due[:10])).days
    return (
        "current"
        if late <= 0
        else "1-30"
        if late <= 30
        else "31-60"
        if late <= 60
        else "61-90"
        if late <= 90
        else "90+"
    )


def oracle(sb: Sandbox, as_of: date, customer_id: str | None = None) -> dict[str, Any]:
    """Balances from the sandbox's own invoice→payments link (which the API never serves)."""
    pays = sb.payments_by_invoice()
    balance = Decimal("0")
    aging = dict.fromkeys(BUCKETS, Decimal("0"))
    per_customer: dict[str, Decimal] = {}
    with_payments = 0
    for inv in sb.invoices(include_archived=False):
        if customer_id and inv["customer_id"] != customer_id:
            continue
        if inv["status"] in SETTLED or inv["status"] in APART:
            continue
        total = dec(inv["total"])
        paid = min(succeeded(pays.get(inv["id"], [])), total)
        with_payments += paid > 0
        owed = total - paid
        balance += owed
        aging[bucket(inv["due_date"], as_of)] += owed
        per_customer[inv["customer_id"]] = per_customer.get(inv["customer_id"], Decimal("0")) + owed
    return {"balance": balance, "aging": aging, "per_customer": per_customer, "with_payments": with_payments}


def find(sb: Sandbox, status: str, want: Any) -> dict[str, Any]:
    pays = sb.payments_by_invoice()
    for inv in sb.invoices():
        if inv["status"] == status and want(pays.get(inv["id"], [])):
            return inv
    raise AssertionError(f"no seeded {status} invoice fits")


async def get(c: Client, ref: str) -> tuple[dict[str, Any], str]:
    r = await c.call_tool("get_invoice", {"invoice": ref})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    return r.structured_content, text_of(r)


async def test_partially_paid_invoice_shows_its_balance(mcp_client: Client, sandbox: Sandbox) -> None:
    inv = find(sandbox, "partially_paid", lambda ps: len(ps) >= 1)
    raw = sandbox.payments_by_invoice()[inv["id"]]
    await mcp_client.call_tool("list_invoices", {"limit": 1})  # token + directory out of the way
    sandbox.clear_log()
    d, text = await get(mcp_client, inv["id"])
    paid = succeeded(raw)
    assert 0 < paid < dec(inv["total"])
    assert dec(d["amount_paid"]) == paid
    assert dec(d["balance_due"]) == dec(inv["total"]) - paid
    assert d.get("paid_at") is None
    assert [p["id"] for p in d["payments"]] == [p["id"] for p in raw]
    assert f"balance due ${dec(inv['total']) - paid:,.2f}" in text
    payment_requests = sandbox.requests("GET", "/payments")
    assert [dict(r.query) for r in payment_requests] == [{"limit": "100", "invoice_id": inv["id"]}]


async def test_instalments_add_up_and_paid_date_is_the_last_one(mcp_client: Client, sandbox: Sandbox) -> None:
    inv = find(sandbox, "paid", lambda ps: sum(p["status"] == "succeeded" for p in ps) >= 2)
    raw = sandbox.payments_by_invoice()[inv["id"]]
    d, text = await get(mcp_client, inv["invoice_number"])
    ok = [p for p in raw if p["status"] == "succeeded"]
    assert dec(d["amount_paid"]) == dec(inv["total"]) == succeeded(raw)
    assert dec(d["balance_due"]) == 0
    assert d["paid_at"] == max(p["created_at"] for p in ok)
    assert f"settled {d['paid_at'][:10]}" in text
    for p in ok:
        assert f"| succeeded | ${dec(p['sub_total']):,.2f}" in text


async def test_failed_attempt_is_visible_and_not_counted(mcp_client: Client, sandbox: Sandbox) -> None:
    inv = find(sandbox, "overdue", lambda ps: [p["status"] for p in ps] == ["failed"])
    d, text = await get(mcp_client, inv["id"])
    assert [p["status"] for p in d["payments"]] == ["failed"]
    assert dec(d["amount_paid"]) == 0 and dec(d["balance_due"]) == dec(inv["total"])
    assert "1 failed" in text and "| failed |" in text


async def test_refunds_and_chargebacks_are_not_money_received(mcp_client: Client, sandbox: Sandbox) -> None:
    # A paid invoice charged twice, the duplicate refunded: paid is the total, not twice it, nor zero.
    dup = find(sandbox, "paid", lambda ps: any(p["status"] == "refunded" for p in ps))
    d, _ = await get(mcp_client, dup["id"])
    assert dec(d["amount_paid"]) == dec(dup["total"]) and dec(d["balance_due"]) == 0
    assert "refunded" in {p["status"] for p in d["payments"]}
    # An unpaid invoice whose only payment was refunded, or charged back, still owes everything.
    for status in ("refunded", "chargeback"):
        inv = next(
            i
            for i in sandbox.invoices()
            if i["status"] in ("open", "overdue")
            and [p["status"] for p in sandbox.payments_by_invoice().get(i["id"], [])] == [status]
        )
        d, _ = await get(mcp_client, inv["id"])
        assert dec(d["amount_paid"]) == 0 and dec(d["balance_due"]) == dec(inv["total"]), status
        assert [p["status"] for p in d["payments"]] == [status]


@pytest.mark.parametrize("scope", ["all", "customer"])
async def test_summary_balances_equal_the_raw_data(mcp_client: Client, sandbox: Sandbox, scope: str) -> None:
    as_of = date(2026, 11, 1)
    args: dict[str, Any] = {"as_of": as_of.isoformat(), "top": 50}
    cid = None
    if scope == "customer":
        cid = max(
            (c["id"] for c in sandbox.customers()),
            key=lambda i: sum(x["status"] == "partially_paid" and x["customer_id"] == i for x in sandbox.invoices()),
        )
        args["customer_id"] = cid
    r = await mcp_client.call_tool("summarize_invoices", args)
    assert not r.is_error, text_of(r)
    got = r.structured_content
    want = oracle(sandbox, as_of, cid)
    assert want["with_payments"] > 0 and got["with_payments"] == want["with_payments"]
    assert dec(got["unpaid"]["balance"]) == want["balance"] < dec(got["unpaid"]["total"])
    assert {k: dec(b["balance"]) for k, b in got["aging"].items()} == want["aging"]
    assert {c["customer_id"]: dec(c["balance"]) for c in got["by_customer"]} == want["per_customer"]
    assert dec(got["by_status"]["partially_paid"]["balance"]) < dec(got["by_status"]["partially_paid"]["total"])
    assert got["by_status"]["paid"].get("balance") is None  # settled: not owed at all
    assert dec(got["by_status"]["overdue"]["balance"]) == dec(got["by_status"]["overdue"]["total"])
    drafts = [
        i
        for i in sandbox.invoices(include_archived=False)
        if i["status"] == "draft" and cid in (None, i["customer_id"])
    ]
    assert got["apart"].get("draft", {"count": 0})["count"] == len(drafts)
    assert got["by_status"].get("draft", {}).get("balance") is None


async def test_void_and_unknown_statuses(mcp_client: Client, sandbox: Sandbox) -> None:
    store = sandbox._app.store
    opens = [i for i in sandbox.invoices(include_archived=False) if i["status"] == "open"]
    void, weird, cancelled = opens[0], opens[1], opens[2]
    base = oracle(sandbox, sandbox.today())
    with store.lock:
        store.invoices_by_id[void["id"]].status = "void"
        store.invoices_by_id[weird["id"]].status = "disputed"
        store.invoices_by_id[cancelled["id"]].status = "Written-Off"
    cid_args: dict[str, Any] = {}
    r = await mcp_client.call_tool("summarize_invoices", cid_args)
    got = r.structured_content
    assert got["unknown_statuses"] == {"disputed": 1}
    assert got["by_status"]["void"].get("balance") is None and got["by_status"]["Written-Off"].get("balance") is None
    assert dec(got["by_status"]["disputed"]["balance"]) == dec(weird["total"])
    # void and written-off left the owed set; the unknown one stayed in it
    assert dec(got["unpaid"]["balance"]) == base["balance"] - dec(void["total"]) - dec(cancelled["total"])
    text = text_of(r)
    assert "unknown statuses counted as owed: «disputed» (1 invoice)" in text
    # an unknown status may carry payments: they are fetched (and there are none here)
    assert any(dict(q.query).get("invoice_id") == weird["id"] for q in sandbox.requests("GET", "/payments"))


async def test_archived_and_drafts_are_reported_apart(mcp_client: Client, sandbox: Sandbox) -> None:
    r = await mcp_client.call_tool("summarize_invoices", {"status": "archived"})
    got = r.structured_content
    archived = [i for i in sandbox.invoices() if i["status"] == "archived"]
    assert got["apart"]["archived"]["count"] == len(archived) > 0
    assert got["unpaid"]["count"] == 0 and dec(got["unpaid"]["balance"]) == 0
    assert "not owed, apart: archived" in text_of(r)


@pytest.mark.slow
async def test_balance_aware_summary_fetches_only_partially_paid(mcp_client: Client, sandbox: Sandbox) -> None:
    await mcp_client.call_tool("list_invoices", {"limit": 1})
    sandbox.clear_log()
    r = await mcp_client.call_tool("summarize_invoices", {})
    assert not r.is_error
    partial = {i["id"] for i in sandbox.invoices(include_archived=False) if i["status"] == "partially_paid"}
    pay_reqs = sandbox.requests("GET", "/payments")
    assert sorted(dict(q.query)["invoice_id"] for q in pay_reqs) == sorted(partial)
    pages = len(sandbox.requests("GET", "/invoices"))
    assert len(sandbox.requests()) == pages + len(partial)
    # within the cache's lifetime, a second summary costs only the invoice pages again
    sandbox.clear_log()
    await mcp_client.call_tool("summarize_invoices", {})
    assert not sandbox.requests("GET", "/payments")
    # balances=false: today's cost, totals only
    sandbox.clear_log()
    r = await mcp_client.call_tool("summarize_invoices", {"balances": False})
    assert not sandbox.requests("GET", "/payments") and r.structured_content["with_payments"] == 0
    assert r.structured_content["unpaid"]["balance"] == r.structured_content["unpaid"]["total"]


@pytest.mark.slow
async def test_payment_failure_mid_summary_is_a_clear_tool_error(mcp_client: Client, sandbox: Sandbox) -> None:
    """Passing failures are retried (the summary stands); a refusal stops it with the API's reason."""
    sandbox.faults.fail_next(1, 400, path="/payments", body={"code": "bad", "message": "payments are unavailable"})
    r = await mcp_client.call_tool("summarize_invoices", {})
    assert r.is_error
    assert "payments are unavailable" in text_of(r) and "Traceback" not in text_of(r)
    sandbox.faults.fail_next(6, 503, path="/payments")
    r = await mcp_client.call_tool("summarize_invoices", {})
    assert not r.is_error and r.structured_content["with_payments"] > 0
    assert sum(q.status == 503 for q in sandbox.requests("GET", "/payments")) == 6


async def test_invoice_resource_carries_the_balance(mcp_client: Client, sandbox: Sandbox) -> None:
    import json

    inv = find(sandbox, "partially_paid", lambda ps: len(ps) >= 1)
    res = await mcp_client.read_resource(f"invoice://{inv['invoice_number']}")
    body = json.loads(res.contents[0].text)  # type: ignore[union-attr]
    paid = succeeded(sandbox.payments_by_invoice()[inv["id"]])
    assert dec(body["amount_paid"]) == paid and dec(body["balance_due"]) == dec(inv["total"]) - paid


async def test_without_access_to_payments_the_invoice_and_totals_still_answer(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    """A key without the payments scope (403 on /payments): get_invoice shows the invoice and says the
    balance is unknown; a summary falls back to totals and says why, instead of failing."""
    inv = find(sandbox, "partially_paid", lambda ps: len(ps) >= 1)
    sandbox.faults.fail_next(1, 403, path="/payments", body={"code": "forbidden", "message": "missing scope"})
    d, text = await get(mcp_client, inv["id"])
    assert d["total"] == inv["total"] and d.get("balance_due") is None and d.get("payments") is None
    assert "missing scope" in d["payments_unavailable"] and "balance due unknown" in text
    sandbox.faults.fail_next(1000, 403, path="/payments", body={"code": "forbidden", "message": "missing scope"})
    r = await mcp_client.call_tool("summarize_invoices", {})
    assert not r.is_error, text_of(r)
    got = r.structured_content
    assert got["balances"] is False and got["with_payments"] == 0
    assert got["unpaid"]["balance"] == got["unpaid"]["total"]
    assert all(b["balance"] == b["total"] for b in got["aging"].values())
    assert "balances unavailable" in text_of(r) and "missing scope" in text_of(r)
