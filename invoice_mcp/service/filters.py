"""The steps of a query: what goes to the API, and the filters the server applies itself while
it reads upstream pages.

`unpaid`, `min_days_past_due`, `text` and `failed_payment` have no API equivalent (the API
filters by one status, dates, customer and number only). What can be pushed down is:
`min_days_past_due` tightens `due_date_end` (a due date on or before `as_of - N days`). The rest
is checked on each invoice as pages of 100 are read, so one upstream request still covers 100
invoices. The query itself travels inside the signed list cursor (service/query.py), so paging
through a filtered list stays exact and stateless."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from invoice_mcp.service.query import API_FILTERS, utc_text
from invoice_mcp.service.statuses import is_owed

if TYPE_CHECKING:
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service.query import InvoiceQuery

InvoiceTest = Callable[["Invoice"], bool]
"""A server-side filter over invoices: True keeps the invoice."""


def due_day(inv: Invoice) -> date | None:
    if not inv.due_date:
        return None
    try:
        return date.fromisoformat(inv.due_date[:10])
    except ValueError:
        return None


def days_past_due(inv: Invoice, as_of: date) -> int | None:
    """Whole days after the due date (as of `as_of`, UTC dates); None without a readable due date."""
    due = due_day(inv)
    return None if due is None else (as_of - due).days


def last_due_day(query: InvoiceQuery) -> date | None:
    """N days past due as of D: due on or before D - N (None without a days-past-due filter)."""
    as_of = query.as_of_date
    if query.min_days_past_due is None:
        return None
    if as_of is None:
        raise ValueError("min_days_past_due needs as_of (the service sets it to today)")
    return as_of - timedelta(days=query.min_days_past_due)


def api_params(query: InvoiceQuery) -> dict[str, str]:
    """The API's own filters, tightened by what the API can do of the server-side ones: N days
    past due as of D means due on or before D - N (inclusive, to the end of that UTC day)."""
    params = {k: str(v) for k in API_FILTERS if (v := getattr(query, k)) is not None}
    last = last_due_day(query)
    if last is not None:
        bound = utc_text(datetime.combine(last, time(23, 59, 59)))
        current = params.get("due_date_end")
        params["due_date_end"] = min(bound, current) if current else bound
    return params


def matcher(
    query: InvoiceQuery,
    text_customers: frozenset[str] = frozenset(),
    failed_invoices: frozenset[str] | None = None,
) -> InvoiceTest:
    """The server-side filters of `query` as one test over invoices. `text_customers`: ids of
    customers whose name contains the text; `failed_invoices`: ids of invoices with a failed payment
    attempt (needed by `failed_payment`; payments attributed exactly, service/attribution.py)."""
    if query.failed_payment and failed_invoices is None:
        raise ValueError("failed_payment needs the invoices with failed payments")
    needle = (query.text or "").casefold()
    last_due = last_due_day(query)
    owed_only = query.unpaid or last_due is not None

    def keep(inv: Invoice) -> bool:
        if failed_invoices is not None and query.failed_payment and (inv.id or "") not in failed_invoices:
            return False
        if owed_only and not is_owed(inv.status):
            return False
        if last_due is not None:
            due = due_day(inv)
            if due is None or due > last_due:
                return False
        if needle:
            return (
                needle in (inv.memo or "").casefold()
                or any(needle in (li.description or "").casefold() for li in inv.line_items or [])
                or (inv.customer_id or "") in text_customers
            )
        return True

    return keep
