"""Payments: what an invoice has received, and cursored lists of payments.

What counts and what an invoice still owes is decided in one place, service/balances.py (used by
get_invoice, list rows and summaries alike); this module reads the payments and builds the
ledger get_invoice shows.

A Payment carries no invoice id (``invoice_id`` is only a filter), so the money of one invoice
is one ``GET /payments?invoice_id=…`` walk: cached briefly, single flight, like invoice pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import anyio
from cachetools import TTLCache

from invoice_mcp.api.errors import APIError
from invoice_mcp.api.models import PAGE_SIZE, Page, Payment, PaymentStatus
from invoice_mcp.service.balances import (
    MAX_PAYMENTS_PER_INVOICE,
    InvoicePayments,
    PaymentIssues,
    balance_of,
    counted,
    is_counted,
)
from invoice_mcp.service.cursors import CursorCodec, CursorError, Gap
from invoice_mcp.service.errors import InvalidCursor, RunawayUpstream
from invoice_mcp.service.paging import walk

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.api.models import Invoice

PAYMENTS_CACHE_TTL_S: Final = 60.0
PAYMENTS_CACHED_INVOICES: Final = 512
CONCURRENT_FETCHES: Final = 8
ZERO: Final = Decimal("0")
NOT_COUNTED: Final = frozenset({PaymentStatus.REFUNDED, PaymentStatus.CHARGEBACK})
__all__ = ["MAX_PAYMENTS_PER_INVOICE", "InvoicePayments", "is_collected"]


def is_collected(p: Payment) -> bool:
    """Money that certainly arrived (and stayed): status exactly `succeeded`, a usable amount."""
    return is_counted(p)


def collected(payments: Iterable[Payment]) -> Decimal:
    return counted(list(payments))


@dataclass
class Ledger:
    """An invoice's payments and what they mean for its balance."""

    payments: list[Payment]
    """Newest first, as the API lists them."""
    paid: Decimal
    balance_due: Decimal | None
    paid_at: str | None
    """For a paid invoice: when the succeeded payment that covered the total was made."""
    failed: int
    returned: Decimal
    """Refunded and charged-back amounts (already not in `paid`)."""
    unknown_statuses: list[str] = field(default_factory=list)
    unavailable: APIError | None = None
    """Why the payments could not be read (then nothing else here is known)."""
    issues: PaymentIssues = field(default_factory=PaymentIssues)
    """What was not counted for a reason worth saying (service/balances.py)."""


def no_ledger(reason: APIError) -> Ledger:
    return Ledger(payments=[], paid=ZERO, balance_due=None, paid_at=None, failed=0, returned=ZERO, unavailable=reason)


def ledger(inv: Invoice, payments: list[Payment] | InvoicePayments) -> Ledger:
    got = payments if isinstance(payments, InvoicePayments) else InvoicePayments(payments)
    b = balance_of(inv, got)
    total = inv.total
    paid_at = None
    if (inv.status or "").strip().lower() == "paid":
        running = ZERO
        ok = [p for p in got.payments if is_counted(p, (inv.currency or "").strip().upper())]
        for p in sorted(ok, key=lambda p: p.created_at or ""):
            running += p.applied or ZERO
            paid_at = p.created_at
            if total is not None and running >= total:
                break
    return Ledger(
        payments=got.payments,
        paid=b.paid,
        balance_due=b.balance,
        paid_at=paid_at,
        failed=b.failed,
        returned=b.returned,
        unknown_statuses=b.unknown_statuses,
        issues=b.issues,
    )


class PaymentBook:
    """Payments per invoice (one walk of /payments?invoice_id=…), cached briefly, single flight."""

    def __init__(self, client: APIClient) -> None:
        self.client = client
        # Bounded small: a summary of 100k invoices walks ~2,700 invoices' payments, and memory must stay flat.
        self._by_invoice: TTLCache[str, InvoicePayments] = TTLCache(PAYMENTS_CACHED_INVOICES, PAYMENTS_CACHE_TTL_S)
        self._locks: dict[str, anyio.Lock] = {}

    def forget(self) -> None:
        self._by_invoice.clear()

    async def of_invoice(self, invoice_id: str) -> InvoicePayments:
        hit = self._by_invoice.get(invoice_id)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(invoice_id, anyio.Lock())
        try:
            async with lock:
                hit = self._by_invoice.get(invoice_id)
                if hit is not None:
                    return hit
                out: list[Payment] = []
                capped = False
                async for page in walk(
                    lambda after: self.client.list_payments(limit=PAGE_SIZE, after=after, invoice_id=invoice_id),
                    max_pages=MAX_PAYMENTS_PER_INVOICE // PAGE_SIZE,
                ):
                    out.extend(page.data)
                    capped = len(out) >= MAX_PAYMENTS_PER_INVOICE and page.has_next_page
                got = InvoicePayments(out, capped=capped)
                self._by_invoice[invoice_id] = got
                return got
        finally:
            if not lock.locked() and self._locks.get(invoice_id) is lock:
                del self._locks[invoice_id]


# -- cursored lists -----------------------------------------------------------------------------


class PaymentCursors(CursorCodec):
    """Cursor signing of service/cursors.py under its own key: a payments cursor is refused by
    list_invoices and an invoice cursor by list_payments."""

    def __init__(self, key: bytes) -> None:
        super().__init__(b"payments|" + key)


@dataclass
class PaymentChunk:
    rows: list[Payment]
    next_cursor: str | None
    has_more: bool
    filters: dict[str, str]


_START: Final = Gap("F", None, 0)
PageKey = tuple[str, str | None]


class PaymentLister:
    """Forward chunks of any size over the API's pages of 100 (same gap cursors as invoices)."""

    def __init__(self, client: APIClient, cursors: PaymentCursors) -> None:
        self.client = client
        self.cursors = cursors
        self._pages: TTLCache[PageKey, Page[Payment]] = TTLCache(256, PAYMENTS_CACHE_TTL_S)

    def decode(self, cursor: str, filters: dict[str, str]) -> tuple[Gap, dict[str, str]]:
        try:
            gap, own, _back = self.cursors.decode(cursor, filters)
        except CursorError as exc:
            raise InvalidCursor(str(exc).replace("next_cursor", "the payments cursor")) from None
        if gap.mode != "F":
            raise InvalidCursor("cursor is not valid: pass the payments cursor exactly as returned")
        return gap, own

    async def _page(self, filters: dict[str, str], anchor: str | None) -> Page[Payment]:
        key = (json.dumps(filters, sort_keys=True), anchor)
        hit = self._pages.get(key)
        if hit is None:
            hit = await self.client.list_payments(limit=PAGE_SIZE, after=anchor, **filters)
            self._pages[key] = hit
        return hit

    async def chunk(self, filters: dict[str, str], limit: int, cursor: str | None) -> PaymentChunk:
        gap = _START
        if cursor:
            gap, filters = self.decode(cursor, filters)
        rows: list[Payment] = []
        anchor, off = gap.anchor, gap.offset
        seen: set[str | None] = {anchor}
        while True:
            page = await self._page(filters, anchor)
            take = page.data[off : off + limit - len(rows)]
            rows.extend(take)
            pos = off + len(take)
            if pos < len(page.data):
                return self._done(rows, Gap("F", anchor, pos), filters)
            if not page.has_next_page or not page.end_cursor or not page.data:
                return PaymentChunk(rows=rows, next_cursor=None, has_more=False, filters=filters)
            if page.end_cursor in seen:
                raise RunawayUpstream(
                    "the API returned the same payments cursor twice (its pagination is not advancing); stopped"
                )
            anchor, off = page.end_cursor, 0
            seen.add(anchor)
            if len(rows) >= limit:
                return self._done(rows, Gap("F", anchor, 0), filters)

    def _done(self, rows: list[Payment], end: Gap, filters: dict[str, str]) -> PaymentChunk:
        return PaymentChunk(rows=rows, next_cursor=self.cursors.encode(end, filters), has_more=True, filters=filters)
