"""Summaries: one streaming fold over every matching invoice (memory stays flat), balance-aware.

Owed invoices (service/statuses.py) are tallied at their total and at their **balance**: the
total less the money that certainly arrived (service/payments.py). Payments are fetched only
where they change the answer: owed invoices whose status says money may already be applied
(partially_paid, or a status nobody documented). Open and overdue invoices owe their total, and
settled ones nothing, without a request. Those fetches run while the walk goes on (a few at a
time, paced by the client's limiter), so they add requests but no serial latency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import anyio

from invoice_mcp.api.errors import APIError, CredentialsError, NotFoundError
from invoice_mcp.api.models import PAGE_SIZE
from invoice_mcp.service.paging import walk
from invoice_mcp.service.payments import CONCURRENT_FETCHES, collected
from invoice_mcp.service.statuses import is_apart, is_owed, is_unknown, may_have_payments, normalize
from invoice_mcp.text import q2

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from invoice_mcp.api.client import APIClient
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service.payments import PaymentBook

Progress = Callable[[int, str], Awaitable[None]]

AGING_BUCKETS: Final = ("current", "1-30", "31-60", "61-90", "90+")
MAX_PENDING_FETCHES: Final = 64
"""Payment fetches queued behind the walk (each waits for one of CONCURRENT_FETCHES slots)."""
ZERO: Final = Decimal("0")


@dataclass
class Tally:
    """A count of invoices, the sum of their totals and of their balances (what is still owed)."""

    count: int = 0
    total: Decimal = ZERO
    balance: Decimal = ZERO

    def add(self, amount: Decimal, balance: Decimal = ZERO) -> None:
        self.count += 1
        self.total += amount
        self.balance += balance


@dataclass
class Summary:
    count: int = 0
    total: Decimal = ZERO
    currency: set[str] = field(default_factory=set)
    by_status: dict[str, Tally] = field(default_factory=dict)
    unpaid_by_customer: dict[str, Tally] = field(default_factory=dict)
    """Owed invoices per customer id: totals and balances."""
    aging: dict[str, Tally] = field(default_factory=lambda: {b: Tally() for b in AGING_BUCKETS})
    unpaid: Tally = field(default_factory=Tally)
    """Every owed invoice: `total` is their totals, `balance` what is still owed on them."""
    apart: dict[str, Tally] = field(default_factory=dict)
    """Drafts and archived invoices: neither owed nor settled, reported apart."""
    unknown_statuses: dict[str, int] = field(default_factory=dict)
    """Statuses with no rule here (counted as owed), with how many invoices carry them."""
    with_payments: int = 0
    """Owed invoices whose balance is below their total because payments were applied."""
    payments_checked: int = 0
    """Owed invoices whose payments were fetched (one upstream walk each)."""
    payments_unavailable: APIError | None = None
    """Why payments could not be read (no access to /payments): balances then equal totals."""
    truncated: bool = False
    undated_unpaid: int = 0
    invalid_totals: int = 0
    """Invoices whose `total` the API sent as NaN, Infinity, ≥ 1e15 or text (counted with 0)."""


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
    """Owed (see service/statuses.py): unknown statuses count as owed."""
    return is_owed(status)


class _Fold:
    def __init__(self, s: Summary, as_of: date, book: PaymentBook | None) -> None:
        self.s = s
        self.as_of = as_of
        self.book = book
        self.pending = anyio.Semaphore(MAX_PENDING_FETCHES)
        self.slots = anyio.CapacityLimiter(CONCURRENT_FETCHES)
        self.error: BaseException | None = None
        self.scope: anyio.CancelScope | None = None
        self.applied: list[tuple[Decimal, list[Tally]]] = []

    def unavailable(self, exc: APIError) -> None:
        """No access to payments (the key lacks the scope, or there is no such endpoint): balances
        fall back to totals for every invoice, said so, rather than failing the whole summary."""
        if self.s.payments_unavailable is None:
            self.s.payments_unavailable = exc
        self.book = None
        for paid, tallies in self.applied:
            for t in tallies:
                t.balance += paid
        self.applied.clear()
        self.s.with_payments = 0

    def fail(self, exc: Exception) -> None:
        """The first error wins and stops everything; it is re-raised as itself (not as a group)."""
        if self.error is None:
            self.error = exc
        if self.scope is not None:
            self.scope.cancel()

    async def add(self, inv: Invoice, tg: TaskGroup) -> None:
        s = self.s
        total = inv.total if inv.total is not None else ZERO
        status = inv.status or "unknown"
        s.count += 1
        s.total += total
        if inv.currency:
            s.currency.add(inv.currency)
        if is_apart(status):
            s.by_status.setdefault(status, Tally()).add(total)
            s.apart.setdefault(normalize(status), Tally()).add(total)
            return
        if not is_owed(status):
            s.by_status.setdefault(status, Tally()).add(total)
            return
        if is_unknown(status):
            s.unknown_statuses[status] = s.unknown_statuses.get(status, 0) + 1
        tallies = [s.by_status.setdefault(status, Tally()), s.unpaid]
        tallies.append(s.unpaid_by_customer.setdefault(inv.customer_id or "?", Tally()))
        bucket = aging_bucket(inv.due_date, self.as_of)
        if bucket is None:
            s.undated_unpaid += 1
        else:
            tallies.append(s.aging[bucket])
        for t in tallies:
            t.add(total, total)
        if self.book is not None and inv.id and may_have_payments(status):
            s.payments_checked += 1
            # Back-pressure: the walk waits while MAX_PENDING_FETCHES fetches are queued, so pending
            # fetches (and memory) stay bounded however far ahead the invoice pages could run.
            await self.pending.acquire()
            tg.start_soon(self._apply, inv.id, total, tallies)

    async def _apply(self, invoice_id: str, total: Decimal, tallies: list[Tally]) -> None:
        assert self.book is not None
        try:
            async with self.slots:
                payments = await self.book.of_invoice(invoice_id)
        except (CredentialsError, NotFoundError) as exc:
            self.unavailable(exc)
            return
        except Exception as exc:
            self.fail(exc)
            return
        finally:
            self.pending.release()
        if self.s.payments_unavailable is not None:
            return
        paid = min(max(ZERO, collected(payments)), max(ZERO, total))
        if paid > 0:
            self.s.with_payments += 1
            self.applied.append((paid, tallies))
            for t in tallies:
                t.balance -= paid


async def summarize(
    client: APIClient,
    filters: dict[str, str],
    *,
    as_of: date,
    max_invoices: int,
    progress: Progress | None = None,
    book: PaymentBook | None = None,
    keep: Callable[[Invoice], bool] | None = None,
) -> Summary:
    """`book`: where payments come from; without it balances equal totals (no payment requests).
    `keep`: a server-side filter (service/filters.py); invoices it rejects are not counted."""
    s = Summary()
    fold = _Fold(s, as_of, book)
    async with anyio.create_task_group() as tg:
        fold.scope = tg.cancel_scope
        try:
            await _walk(client, filters, s, fold, tg, max_invoices, progress, keep)
        except Exception as exc:
            fold.fail(exc)
    if fold.error is not None:
        raise fold.error
    for b in s.by_status.values():
        b.total = q2(b.total)
    return s


async def _walk(
    client: APIClient,
    filters: dict[str, str],
    s: Summary,
    fold: _Fold,
    tg: TaskGroup,
    max_invoices: int,
    progress: Progress | None,
    keep: Callable[[Invoice], bool] | None = None,
) -> None:
    read = 0  # with a server-side filter, max_invoices bounds the invoices read, not only those kept
    async for page in walk(lambda after: client.list_invoices(limit=PAGE_SIZE, after=after, **filters)):
        for inv in page.data:
            read += 1
            if keep is not None and read > max_invoices:
                s.truncated = True
                break
            if keep is not None and not keep(inv):
                continue
            if s.count >= max_invoices:
                s.truncated = True
                break
            if "total" in inv.invalid_amounts:
                s.invalid_totals += 1
            await fold.add(inv, tg)
        if progress is not None:
            await progress(s.count, f"{s.count} invoices read")
        if s.truncated:
            return
        if (s.count >= max_invoices or (keep is not None and read >= max_invoices)) and page.has_next_page:
            s.truncated = True
            return
