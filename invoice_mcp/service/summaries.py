"""Summaries: one streaming fold over every matching invoice (memory stays flat)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from invoice_mcp.api.models import PAGE_SIZE, InvoiceStatus
from invoice_mcp.service.paging import walk
from invoice_mcp.text import q2

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient

Progress = Callable[[int, str], Awaitable[None]]

AGING_BUCKETS: Final = ("current", "1-30", "31-60", "61-90", "90+")


@dataclass
class Tally:
    """A count of invoices and the sum of their totals."""

    count: int = 0
    total: Decimal = Decimal("0")

    def add(self, amount: Decimal) -> None:
        self.count += 1
        self.total += amount


@dataclass
class Summary:
    count: int = 0
    total: Decimal = Decimal("0")
    currency: set[str] = field(default_factory=set)
    by_status: dict[str, Tally] = field(default_factory=dict)
    unpaid_by_customer: dict[str, Tally] = field(default_factory=dict)
    aging: dict[str, Tally] = field(default_factory=lambda: {b: Tally() for b in AGING_BUCKETS})
    unpaid: Tally = field(default_factory=Tally)
    truncated: bool = False
    undated_unpaid: int = 0


def aging_bucket(due: str | None, as_of: date) -> str | None:
    if not due:
        return None
    try:
        due_day = date.fromisoformat(due[:10])
    except ValueError:
        return None
    late = (as_of - due_day).days
    if late <= 0:
        return "current"
    if late <= 30:
        return "1-30"
    if late <= 60:
        return "31-60"
    if late <= 90:
        return "61-90"
    return "90+"


def is_unpaid(status: str | None) -> bool:
    """Owed unless settled. Unknown (new) statuses count as owed: better to show
    money that may be due than to hide it."""
    return (status or "").lower() not in InvoiceStatus.SETTLED


async def summarize(
    client: APIClient,
    filters: dict[str, str],
    *,
    as_of: date,
    max_invoices: int,
    progress: Progress | None = None,
) -> Summary:
    s = Summary()
    async for page in walk(lambda after: client.list_invoices(limit=PAGE_SIZE, after=after, **filters)):
        for inv in page.data:
            if s.count >= max_invoices:
                s.truncated = True
                break
            total = inv.total if inv.total is not None else Decimal("0")
            status = inv.status or "unknown"
            s.count += 1
            s.total += total
            if inv.currency:
                s.currency.add(inv.currency)
            s.by_status.setdefault(status, Tally()).add(total)
            if is_unpaid(status):
                s.unpaid.add(total)
                s.unpaid_by_customer.setdefault(inv.customer_id or "?", Tally()).add(total)
                bucket = aging_bucket(inv.due_date, as_of)
                if bucket is None:
                    s.undated_unpaid += 1
                else:
                    s.aging[bucket].add(total)
        if progress is not None:
            await progress(s.count, f"{s.count} invoices read")
        if s.truncated:
            break
        if s.count >= max_invoices and page.has_next_page:
            s.truncated = True
            break
    for b in s.by_status.values():
        b.total = q2(b.total)
    return s
