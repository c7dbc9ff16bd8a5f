"""Payments: what an invoice has received, and the signing of payment list cursors.

What counts and what an invoice still owes is decided in one place, service/balances.py (used by
get_invoice, list rows and summaries alike); this module reads the payments and builds the
ledger get_invoice shows.

A Payment carries no invoice id (``invoice_id`` is only a filter), so the money of one invoice
is one ``GET /payments?invoice_id=…`` walk: cached briefly, single flight, like invoice pages.
Lists of payments are chunks like lists of invoices (service/chunks.py), under their own cursor key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from invoice_mcp.api.errors import APIError
from invoice_mcp.api.models import PAGE_SIZE, Payment, PaymentStatus
from invoice_mcp.service.balances import (
    MAX_PAYMENTS_PER_INVOICE,
    InvoicePayments,
    PaymentIssues,
    balance_of,
    counted,
    is_counted,
)
from invoice_mcp.service.cache import SingleFlightCache
from invoice_mcp.service.cursors import CursorCodec
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
        self._by_invoice: SingleFlightCache[str, InvoicePayments] = SingleFlightCache(
            PAYMENTS_CACHED_INVOICES, PAYMENTS_CACHE_TTL_S
        )

    def forget(self) -> None:
        self._by_invoice.clear()

    async def of_invoice(self, invoice_id: str) -> InvoicePayments:
        return await self._by_invoice.get(invoice_id, lambda: self._walk(invoice_id))

    async def _walk(self, invoice_id: str) -> InvoicePayments:
        out: list[Payment] = []
        capped = False
        async for page in walk(
            lambda after: self.client.list_payments(limit=PAGE_SIZE, after=after, invoice_id=invoice_id),
            max_pages=MAX_PAYMENTS_PER_INVOICE // PAGE_SIZE,
        ):
            out.extend(page.data)
            capped = len(out) >= MAX_PAYMENTS_PER_INVOICE and page.has_next_page
        return InvoicePayments(out, capped=capped)


# -- cursored lists -----------------------------------------------------------------------------


class PaymentCursors(CursorCodec):
    """Cursor signing of service/cursors.py under its own key: a payments cursor is refused by
    list_invoices and an invoice cursor by list_payments."""

    def __init__(self, key: bytes) -> None:
        super().__init__(b"payments|" + key)
