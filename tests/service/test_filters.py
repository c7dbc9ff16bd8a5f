"""Server-side filters: what is pushed to the API, and the predicate over invoices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from invoice_mcp.api.models import Invoice, LineItem
from invoice_mcp.service.filters import api_params, matcher
from invoice_mcp.service.query import InvoiceQuery

AS_OF = date(2026, 11, 25).isoformat()


def inv(status: str, due: str, memo: str | None = None, line: str = "Seat", customer: str = "c1") -> Invoice:
    return Invoice(
        status=status,
        due_date=due,
        memo=memo,
        customer_id=customer,
        total=Decimal("1"),
        line_items=[LineItem(description=line, amount=Decimal("1"), quantity=1)],
    )


def test_min_days_past_due_is_pushed_down_as_an_inclusive_due_date_end() -> None:
    f = InvoiceQuery(min_days_past_due=60, as_of=AS_OF)
    assert api_params(f) == {"due_date_end": "2026-09-26T23:59:59Z"}
    tighter = InvoiceQuery(min_days_past_due=60, as_of=AS_OF, due_date_end="2026-01-01")
    assert api_params(tighter)["due_date_end"] == "2026-01-01T23:59:59Z"
    keep = matcher(f)
    assert keep(inv("overdue", "2026-09-26")) and not keep(inv("overdue", "2026-09-27"))
    assert not keep(inv("paid", "2020-01-01")) and not keep(inv("open", ""))


def test_the_query_round_trips_through_what_a_cursor_seals() -> None:
    f = InvoiceQuery(status="open", unpaid=True, min_days_past_due=0, as_of=AS_OF, text="SOW")
    assert InvoiceQuery.unsealed(f.sealed()) == f
    assert f.server_side and api_params(f) == {"status": "open", "due_date_end": "2026-11-25T23:59:59Z"}
    assert not InvoiceQuery().server_side and InvoiceQuery().empty and InvoiceQuery().sealed() == {}


def test_text_matches_memo_lines_and_customer_ids_given() -> None:
    keep = matcher(InvoiceQuery(text="sow"), frozenset({"c9"}))
    assert keep(inv("paid", "2026-01-01", memo="Per SOW #12"))
    assert keep(inv("paid", "2026-01-01", line="Project per sow"))
    assert keep(inv("paid", "2026-01-01", customer="c9"))
    assert not keep(inv("paid", "2026-01-01", memo="Thanks"))


def test_the_tool_inputs_are_the_queries_their_cursors_seal() -> None:
    from invoice_mcp.server.tools.listing import ListInput, SummaryInput
    from invoice_mcp.server.tools.payments import PaymentsInput
    from invoice_mcp.service.query import PaymentQuery

    args = ListInput(status="OPEN", unpaid=True, limit=5, cursor="c", created_at_start="2026-01-01")
    assert isinstance(args, InvoiceQuery) and isinstance(SummaryInput(), InvoiceQuery)
    assert args.sealed() == {"status": "open", "unpaid": True, "created_at_start": "2026-01-01T00:00:00Z"}
    payments = PaymentsInput(method="ACH", limit=7)
    assert isinstance(payments, PaymentQuery) and payments.sealed() == {"method": "ach"}
    assert payments.api_params() == {"payment_method": "ach"}
