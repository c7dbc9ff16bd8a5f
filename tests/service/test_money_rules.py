"""The settled set and the amount-paid rule, as pure functions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoice_mcp.api.models import Invoice, Payment
from invoice_mcp.service.payments import collected, ledger
from invoice_mcp.service.statuses import is_apart, is_owed, is_settled, is_unknown, may_have_payments


@pytest.mark.parametrize(
    "status",
    ["paid", "void", "voided", "canceled", "cancelled", "uncollectible", "written_off", "written-off", "PAID", "Void "],
)
def test_settled(status: str) -> None:
    assert is_settled(status) and not is_owed(status) and not is_unknown(status)


@pytest.mark.parametrize("status", ["draft", "archived", "Draft"])
def test_apart(status: str) -> None:
    assert is_apart(status) and not is_owed(status) and not is_settled(status)


@pytest.mark.parametrize(
    ("status", "unknown"),
    [("open", False), ("overdue", False), ("partially_paid", False), ("disputed", True), ("", True), (None, True)],
)
def test_owed_and_unknown(status: str | None, unknown: bool) -> None:
    assert is_owed(status) and is_unknown(status) is unknown


def test_payments_fetched_only_where_they_change_the_answer() -> None:
    assert may_have_payments("partially_paid") and may_have_payments("disputed")
    assert not any(may_have_payments(s) for s in ("open", "overdue", "paid", "void", "draft", "archived"))


def pay(status: str, sub: str, created: str = "2026-10-01T00:00:00Z", total: str | None = None) -> Payment:
    return Payment(status=status, sub_total=Decimal(sub), total=Decimal(total or sub), created_at=created)


def test_only_succeeded_money_counts() -> None:
    ps = [
        pay("succeeded", "10.10"),
        pay("failed", "50"),
        pay("refunded", "20"),
        pay("chargeback", "5"),
        pay("pending", "7"),
        pay("settling_v2", "3"),
        pay("SUCCEEDED", "0.01", total="0.35"),
    ]
    assert collected(ps) == Decimal("10.11")  # sub_total, not the fee-inclusive total


def test_ledger_partial_paid_and_settled() -> None:
    inv = Invoice(id="i", status="partially_paid", total=Decimal("100"))
    led = ledger(inv, [pay("succeeded", "30"), pay("failed", "100"), pay("refunded", "30"), pay("odd", "1")])
    assert (led.paid, led.balance_due, led.paid_at, led.failed, led.returned) == (
        Decimal("30"),
        Decimal("70"),
        None,
        1,
        Decimal("30"),
    )
    assert led.unknown_statuses == ["odd"]
    paid = Invoice(id="i", status="paid", total=Decimal("100"))
    led = ledger(paid, [pay("succeeded", "40", "2026-10-09T00:00:00Z"), pay("succeeded", "60", "2026-10-02T00:00:00Z")])
    assert led.balance_due == 0 and led.paid_at == "2026-10-09T00:00:00Z"
    void = Invoice(id="i", status="void", total=Decimal("100"))
    assert ledger(void, []).balance_due == 0
    over = Invoice(id="i", status="partially_paid", total=Decimal("10"))
    assert ledger(over, [pay("succeeded", "15")]).balance_due == 0
    # an open invoice owes its total by its status, as in lists and summaries; money that
    # contradicts the status is reported, not applied
    still_open = ledger(Invoice(id="i", status="open", total=Decimal("10")), [pay("succeeded", "15")])
    assert still_open.balance_due == 10 and still_open.issues.against_status == [("i", "open", Decimal("15"))]
    assert ledger(Invoice(id="i", status="open"), []).balance_due is None


def test_payment_issues_name_at_most_five_and_count_all() -> None:
    from invoice_mcp.service.balances import InvoicePayments, balance_of

    inv = Invoice(id="i", invoice_number="INV-1", status="partially_paid", total=Decimal("100"), currency="usd")
    bad = [Payment.model_validate({"id": f"p{n}", "status": "succeeded", "sub_total": "x"}) for n in range(7)]
    odd = Payment.model_validate({"id": "q", "status": None, "sub_total": 1})
    over = [pay("succeeded", "80"), pay("succeeded", "50")]
    b = balance_of(inv, InvoicePayments([*bad, odd, *over], capped=True))
    assert b.balance == 0 and b.paid == Decimal("130")
    text = " | ".join(b.issues.phrases("USD"))
    assert "7 payments with an unusable amount (not counted): p0, p1, p2, p3, p4 and 2 more" in text
    assert "unknown status «?»" in text and "INV-1: payments exceed the total by $30.00" in text
    assert "1 invoice with more payments than the 1,000 read" in text


def test_money_outside_dollars_never_shows_a_dollar_sign() -> None:
    from invoice_mcp.text import money_text

    assert money_text(Decimal("-1234.5"), "eur") == "-1,234.50 EUR"
    assert money_text(None, "EUR") == "? EUR" and money_text(None, None) == "$?"
    assert money_text(Decimal("2"), "") == "$2.00"
