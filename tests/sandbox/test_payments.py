"""The sandbox's ``/payments`` over real HTTP: shape, paging, filters, and consistency with invoices."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from invoice_mcp.sandbox import Sandbox

from ..conftest import TODAY, new_sandbox

PAYMENT_KEYS = {"id", "customer_id", "status", "payment_method", "created_at", "due_date", "sub_total", "total", "fees"}
FEE_KEYS = {"amount", "covered_by_customer", "name", "type"}
FEE_TYPES = {"FT_LATE_PAYMENT", "FT_PRODUCT", "FT_METHOD", "FT_INTEREST"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with new_sandbox(testing=False) as sb:
        yield sb


def walk(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        resp = client.get("/payments", params=query)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items += page["data"]
        if not page["has_next_page"]:
            return items
        query["after"] = page["end_cursor"]


def money(value: Any) -> Decimal:
    assert isinstance(value, int | float) and not isinstance(value, bool)
    return Decimal(str(value))


def succeeded_sum(payments: list[dict[str, Any]]) -> Decimal:
    return sum((money(p["sub_total"]) for p in payments if p["status"] == "succeeded"), Decimal(0))


# -- shape -----------------------------------------------------------------------------------------


def test_payment_shape_has_no_invoice_id(sb: Sandbox, api: httpx.Client) -> None:
    page = api.get("/payments", params={"limit": 100}).json()
    assert set(page) == {"data", "start_cursor", "end_cursor", "has_next_page", "has_previous_page"}
    customers = {c["id"] for c in sb.customers()}
    for pay in walk(api):
        assert set(pay) == PAYMENT_KEYS, "a Payment carries no invoice_id (it is only a filter)"
        assert pay["id"].startswith("pay_") and pay["customer_id"] in customers
        assert pay["created_at"].endswith("Z") and len(pay["created_at"]) == 20
        dt.date.fromisoformat(pay["due_date"])
        covered = Decimal(0)
        for fee in pay["fees"]:
            assert set(fee) == FEE_KEYS and fee["type"] in FEE_TYPES
            assert isinstance(fee["covered_by_customer"], bool) and money(fee["amount"]) > 0
            covered += money(fee["amount"]) if fee["covered_by_customer"] else 0
        assert money(pay["total"]) == money(pay["sub_total"]) + covered
        assert money(pay["sub_total"]) > 0
        if pay["status"] == "failed":
            assert pay["fees"] == []


def test_get_payment_and_404(sb: Sandbox, api: httpx.Client) -> None:
    first = sb.payments()[0]
    resp = api.get(f"/payments/{first['id']}")
    assert resp.status_code == 200 and resp.json() == first
    missing = api.get("/payments/pay_nope")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert api.get("/payments/pay%2Fslash").status_code == 404
    invoice_id = sb.invoices()[0]["id"]
    assert api.get(f"/payments/{invoice_id}").status_code == 404  # ids are per collection
    assert api.post("/payments").status_code == 405
    with httpx.Client(base_url=sb.base_url) as anonymous:
        assert anonymous.get("/payments").status_code == 401
        assert anonymous.get(f"/payments/{first['id']}").status_code == 401


# -- paging ------------------------------------------------------------------------------------------


def test_default_limit_and_forward_walk_match_oracle(sb: Sandbox, api: httpx.Client) -> None:
    expected = sb.payments()
    assert len(expected) > 250
    page = api.get("/payments").json()
    assert len(page["data"]) == 100 and page["has_next_page"] and not page["has_previous_page"]
    assert page["data"] == expected[:100]
    seen: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 37}
    pages = 0
    while True:
        page = api.get("/payments", params=query).json()
        assert page["has_previous_page"] is (pages > 0)
        seen += page["data"]
        pages += 1
        if not page["has_next_page"]:
            break
        query["after"] = page["end_cursor"]
    assert seen == expected
    keys = [(p["created_at"], p["id"]) for p in expected]
    assert keys == sorted(keys, reverse=True)
    assert api.get("/payments", params={"limit": 500}).json()["data"] == expected[:100]  # clamped


def test_backward_paging_and_cursor_validation(api: httpx.Client) -> None:
    p1 = api.get("/payments", params={"limit": 20}).json()
    p2 = api.get("/payments", params={"limit": 20, "after": p1["end_cursor"]}).json()
    assert "+" in p1["end_cursor"] or "/" in p1["end_cursor"] or "=" in p1["end_cursor"]
    back = api.get("/payments", params={"limit": 20, "before": p2["start_cursor"]}).json()
    assert back["data"] == p1["data"] and back["has_next_page"] and not back["has_previous_page"]
    invoices = api.get("/invoices", params={"limit": 1}).json()
    wrong_kind = api.get("/payments", params={"after": invoices["end_cursor"]})
    assert wrong_kind.status_code == 400 and wrong_kind.json()["validation_errors"] == {"after": "invalid cursor"}
    both = api.get("/payments", params={"after": p1["end_cursor"], "before": p1["start_cursor"]})
    assert both.status_code == 400 and "before" in both.json()["validation_errors"]
    assert api.get("/payments", params={"limit": "0"}).status_code == 400


# -- filters -----------------------------------------------------------------------------------------


def test_enum_filters(sb: Sandbox, api: httpx.Client) -> None:
    everything = sb.payments()
    statuses = Counter(p["status"] for p in everything)
    assert set(statuses) == {"succeeded", "failed", "refunded", "chargeback", "pending"}
    for status in statuses:
        assert walk(api, status=status) == [p for p in everything if p["status"] == status]
    methods = Counter(p["payment_method"] for p in everything)
    assert set(methods) == {"card", "ach"}
    for method in methods:
        assert walk(api, payment_method=method) == [p for p in everything if p["payment_method"] == method]
    by_type = {kind: walk(api, type=kind) for kind in ("autopay", "one_time")}
    assert all(by_type.values())
    assert sorted(p["id"] for group in by_type.values() for p in group) == sorted(p["id"] for p in everything)
    combined = walk(api, status="succeeded", payment_method="card", type="autopay")
    assert combined == [p for p in by_type["autopay"] if p["status"] == "succeeded" and p["payment_method"] == "card"]

    bad = api.get("/payments", params={"status": "paid", "type": "refund", "payment_method": "cash"})
    assert bad.status_code == 400
    errors = bad.json()["validation_errors"]
    assert set(errors) == {"status", "type", "payment_method"}
    assert "succeeded" in errors["status"] and "ach" in errors["payment_method"]


def test_customer_invoice_and_date_filters(sb: Sandbox, api: httpx.Client) -> None:
    everything = sb.payments()
    by_invoice = sb.payments_by_invoice()
    counts = Counter(p["customer_id"] for p in everything)
    customer, _ = counts.most_common(1)[0]
    assert walk(api, customer_id=customer, limit=7) == [p for p in everything if p["customer_id"] == customer]
    assert walk(api, customer_id="cus_unknown") == []

    instalments = next(iid for iid, ps in by_invoice.items() if len(ps) >= 3)
    assert walk(api, invoice_id=instalments, limit=1) == by_invoice[instalments]
    assert walk(api, invoice_id="inv_unknown") == []
    other_customer = next(c for c in counts if c != by_invoice[instalments][0]["customer_id"])
    assert walk(api, invoice_id=instalments, customer_id=other_customer) == []

    # created_at bounds are RFC3339 and inclusive, like the invoice filters.
    middle = everything[len(everything) // 2]
    exact = walk(api, created_at_start=middle["created_at"], created_at_end=middle["created_at"])
    assert middle in exact and all(p["created_at"] == middle["created_at"] for p in exact)
    october = walk(api, created_at_start="2026-10-01T00:00:00Z", created_at_end="2026-10-31T23:59:59Z")
    assert october == [p for p in everything if p["created_at"].startswith("2026-10")]
    assert october
    offset = walk(api, created_at_start="2026-10-01T02:00:00+02:00", created_at_end="2026-10-31T23:59:59.5Z")
    assert offset == october
    bad = api.get("/payments", params={"created_at_start": "2026-10-01"})
    assert bad.status_code == 400 and set(bad.json()["validation_errors"]) == {"created_at_start"}


# -- consistency with invoices -------------------------------------------------------------------------


@pytest.mark.slow
def test_payments_match_invoice_statuses(sb: Sandbox, api: httpx.Client) -> None:
    """Checked over HTTP per invoice (the invoice_id filter) and against the raw link."""
    invoices = sb.invoices()
    raw = sb.payments_by_invoice()
    assert sum(len(ps) for ps in raw.values()) == len(sb.payments())  # every payment has an invoice
    archived_before = {inv["id"]: inv["status"] for inv in invoices if inv["status"] == "archived"}
    assert archived_before
    kinds: Counter[str] = Counter()
    for inv in invoices:
        payments = walk(api, invoice_id=inv["id"])
        assert payments == raw.get(inv["id"], [])
        total, paid = money(inv["total"]), succeeded_sum(payments)
        for pay in payments:
            assert pay["customer_id"] == inv["customer_id"] and pay["due_date"] == inv["due_date"]
            assert inv["created_at"] < pay["created_at"] < TODAY.isoformat()
        status = inv["status"]
        if status == "paid":
            assert paid == total, inv["invoice_number"]
            succeeded = [p for p in payments if p["status"] == "succeeded"]
            kinds["instalments" if len(succeeded) > 1 else "single"] += 1
            if any(p["status"] == "refunded" for p in payments):
                kinds["paid with a refunded duplicate"] += 1
            if any(p["status"] == "failed" for p in payments):
                kinds["paid after a failed attempt"] += 1
        elif status == "partially_paid":
            assert 0 < paid < total, inv["invoice_number"]
            kinds["partial"] += 1
        elif status in ("open", "overdue"):
            assert paid == 0, inv["invoice_number"]
            for pay in payments:
                kinds[f"{status} {pay['status']}"] += 1
        elif status == "draft":
            assert payments == []
        else:
            assert status == "archived"
            kinds["archived with payments" if payments else "archived without"] += 1
    assert kinds["instalments"] >= 10 and kinds["single"] > kinds["instalments"]
    assert kinds["partial"] >= 5
    assert kinds["paid with a refunded duplicate"] == 1 and kinds["paid after a failed attempt"] >= 1
    assert kinds["overdue failed"] + kinds["open failed"] >= 3
    assert kinds["overdue chargeback"] == 1 and kinds["open pending"] == 1
    assert kinds["overdue refunded"] + kinds["open refunded"] >= 1
    assert kinds["archived with payments"] >= 1


def test_create_archive_restore_keep_payments(sb: Sandbox, api: httpx.Client) -> None:
    before = sb.payments()
    customer = sb.customers()[0]["id"]
    body = {
        "customer_id": customer,
        "currency": "USD",
        "line_items": [{"description": "x", "amount": 10, "quantity": 1}],
    }
    created = api.post("/invoices", json=body).json()
    assert walk(api, invoice_id=created["id"]) == []
    assert sb.payments() == before

    by_invoice = sb.payments_by_invoice()
    paid = next(inv for inv in sb.invoices() if inv["status"] == "paid" and len(by_invoice.get(inv["id"], [])) > 1)
    own = by_invoice[paid["id"]]
    assert api.delete(f"/invoices/{paid['id']}").json()["status"] == "archived"
    assert walk(api, invoice_id=paid["id"]) == own
    assert sb.payments() == before
    assert api.post(f"/invoices/{paid['id']}/restore").json()["status"] == "paid"
    assert walk(api, invoice_id=paid["id"]) == own
    assert succeeded_sum(own) == money(paid["total"])
    assert sb.payments() == before


def test_payments_are_reproducible_and_leave_invoices_alone() -> None:
    one = new_sandbox(testing=False, rate_limit=5.0, seed=11)
    two = new_sandbox(testing=False, rate_limit=5.0, seed=11)
    other = new_sandbox(testing=False, rate_limit=5.0, seed=12)
    assert one.payments() == two.payments() and one.payments_by_invoice() == two.payments_by_invoice()
    assert one.payments() != other.payments()
    one.reset()
    assert one.payments() == two.payments()


def test_many_invoices_scale() -> None:
    sb = new_sandbox(testing=False, invoices=5_000)
    by_invoice = sb.payments_by_invoice()
    for inv in sb.invoices():
        paid = succeeded_sum(by_invoice.get(inv["id"], []))
        if inv["status"] == "paid":
            assert paid == money(inv["total"])
        elif inv["status"] == "partially_paid":
            assert 0 < paid < money(inv["total"])
        elif inv["status"] != "archived":
            assert paid == 0
    statuses = Counter(p["status"] for p in sb.payments())
    assert statuses["refunded"] == 5_000 // 200 + 1 and statuses["chargeback"] == 1 and statuses["pending"] == 1


def test_seeded_payments_do_not_depend_on_earlier_mutations(sb: Sandbox, api: httpx.Client) -> None:
    """Payments are generated on first use, from the data as seeded: creating or archiving
    invoices first changes nothing."""
    invoices = sb.invoices()
    open_ = next(inv for inv in invoices if inv["status"] == "open")
    paid = next(inv for inv in invoices if inv["status"] == "paid")
    body = {"customer_id": open_["customer_id"], "currency": "USD"}
    body["line_items"] = [{"description": "x", "amount": 10, "quantity": 1}]
    assert api.post("/invoices", json=body).status_code == 201
    assert api.delete(f"/invoices/{open_['id']}").status_code == 200
    assert api.delete(f"/invoices/{paid['id']}").status_code == 200
    fresh = new_sandbox(testing=False, rate_limit=5.0)
    assert sb.payments() == fresh.payments()
    assert walk(api, invoice_id=paid["id"]) == fresh.payments_by_invoice()[paid["id"]]
