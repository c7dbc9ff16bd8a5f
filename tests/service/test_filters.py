"""Server-side filters: what is pushed to the API, and the predicate over invoices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from invoice_mcp.api.models import Invoice, LineItem
from invoice_mcp.service.filters import LocalFilter, split

AS_OF = date(2026, 11, 25)


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
    f = LocalFilter(min_days_past_due=60, as_of=AS_OF)
    assert f.push_down({}) == {"due_date_end": "2026-09-26T23:59:59Z"}
    assert f.push_down({"due_date_end": "2026-01-01T23:59:59Z"})["due_date_end"] == "2026-01-01T23:59:59Z"
    keep = f.matcher()
    assert keep(inv("overdue", "2026-09-26")) and not keep(inv("overdue", "2026-09-27"))
    assert not keep(inv("paid", "2020-01-01")) and not keep(inv("open", ""))


def test_params_round_trip_through_the_cursor_filters() -> None:
    f = LocalFilter(unpaid=True, min_days_past_due=0, as_of=AS_OF, text="SOW")
    api, back = split({"status": "open"} | f.params())
    assert api == {"status": "open"} and back == f
    assert not LocalFilter().active and split({"x": "1"}) == ({"x": "1"}, LocalFilter())


def test_text_matches_memo_lines_and_customer_ids_given() -> None:
    keep = LocalFilter(text="sow").matcher(frozenset({"c9"}))
    assert keep(inv("paid", "2026-01-01", memo="Per SOW #12"))
    assert keep(inv("paid", "2026-01-01", line="Project per sow"))
    assert keep(inv("paid", "2026-01-01", customer="c9"))
    assert not keep(inv("paid", "2026-01-01", memo="Thanks"))
