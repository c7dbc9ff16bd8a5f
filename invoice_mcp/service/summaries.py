"""Summaries: one streaming fold over every matching invoice (memory stays flat), balance-aware.

Owed invoices (service/statuses.py) are tallied at their total and at their **balance**, by the
one rule of service/balances.py, and per currency: money in one currency is never added to
another's. Payments are fetched only where the rule needs them: owed invoices whose status says
money may already be applied (partially_paid, or a status nobody documented). Open and overdue
invoices owe their total, and settled ones nothing, without a request. Those fetches run while
the walk goes on (a few at a time, paced by the client's limiter), so they add requests but no
serial latency.
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
from invoice_mcp.service.balances import PaymentIssues, balance_of, currency_of, reads_payments
from invoice_mcp.service.paging import walk
from invoice_mcp.service.payments import CONCURRENT_FETCHES
from invoice_mcp.service.statuses import is_apart, is_owed, is_unknown, normalize
from invoice_mcp.text import to_cents

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from invoice_mcp.api.client import APIClient
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service.filters import InvoiceTest
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
    late_count: int = 0
    """Of these, owed invoices past due (due before as_of, as the aging buckets count them)."""
    late_balance: Decimal = ZERO

    def add(self, amount: Decimal, balance: Decimal = ZERO, *, late: bool = False) -> None:
        self.count += 1
        self.total += amount
        self.balance += balance
        if late:
            self.late_count += 1
            self.late_balance += balance

    def pay(self, amount: Decimal, *, late: bool) -> None:
        """Money applied to one of the invoices counted here (negative to undo it)."""
        self.balance -= amount
        if late:
            self.late_balance -= amount


@dataclass
class Figures:
    """The money of one currency: nothing here is ever added to another currency's figures."""

    count: int = 0
    total: Decimal = ZERO
    by_status: dict[str, Tally] = field(default_factory=dict)
    unpaid_by_customer: dict[str, Tally] = field(default_factory=dict)
    """Owed invoices per customer id: totals and balances."""
    aging: dict[str, Tally] = field(default_factory=lambda: {b: Tally() for b in AGING_BUCKETS})
    unpaid: Tally = field(default_factory=Tally)
    """Every owed invoice: `total` is their totals, `balance` what is still owed on them."""
    drafts_and_archived: dict[str, Tally] = field(default_factory=dict)
    """Drafts and archived invoices: neither owed nor settled, reported apart."""
    with_payments: int = 0
    """Owed invoices whose balance is below their total because payments were applied."""


@dataclass
class Summary:
    by_currency: dict[str, Figures] = field(default_factory=dict)
    """Figures per currency code ("" for invoices that name none), most invoices first once done."""
    unknown_statuses: dict[str, int] = field(default_factory=dict)
    """Statuses with no rule here (counted as owed), with how many invoices carry them."""
    payments_checked: int = 0
    """Owed invoices whose payments were fetched (one upstream walk each)."""
    payments_unavailable: APIError | None = None
    """Why payments could not be read (no access to /payments): balances then equal totals."""
    payment_issues: PaymentIssues = field(default_factory=PaymentIssues)
    """Payments not counted for a reason worth saying (service/balances.py)."""
    truncated: bool = False
    failed_unattributed: int = 0
    """With the failed-attempt filter: failed payments not tied to an invoice within the call's budget."""
    undated_unpaid: int = 0
    invalid_totals: int = 0
    """Invoices whose `total` the API sent as NaN, Infinity, ≥ 1e15 or text (counted with 0)."""

    def figures(self, currency: str) -> Figures:
        return self.by_currency.setdefault(currency, Figures())

    @property
    def count(self) -> int:
        return sum(f.count for f in self.by_currency.values())

    @property
    def main(self) -> tuple[str, Figures]:
        """The currency with the most invoices (USD on a tie) and its figures."""
        if not self.by_currency:
            return "", Figures()
        code = max(self.by_currency, key=lambda c: (self.by_currency[c].count, c == "USD", c))
        return code, self.by_currency[code]


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


class SummaryFold:
    """Adds invoices into a Summary as the walk reads them, and applies their payments as the
    fetches started for them come back (or takes them out again if payments become unreadable)."""

    def __init__(self, s: Summary, as_of: date, book: PaymentBook | None) -> None:
        self.s = s
        self.as_of = as_of
        self.book = book
        self.pending = anyio.Semaphore(MAX_PENDING_FETCHES)
        self.slots = anyio.CapacityLimiter(CONCURRENT_FETCHES)
        self.error: BaseException | None = None
        self.scope: anyio.CancelScope | None = None
        self.applied: list[tuple[Decimal, list[Tally], bool]] = []

    def unavailable(self, exc: APIError) -> None:
        """No access to payments (the key lacks the scope, or there is no such endpoint): balances
        fall back to totals for every invoice, said so, rather than failing the whole summary."""
        if self.s.payments_unavailable is None:
            self.s.payments_unavailable = exc
        self.book = None
        for paid, tallies, late in self.applied:
            for t in tallies:
                t.pay(-paid, late=late)
        self.applied.clear()
        for f in self.s.by_currency.values():
            f.with_payments = 0
        self.s.payment_issues = PaymentIssues()

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
        f = s.figures(currency_of(inv.currency))
        f.count += 1
        f.total += total
        if is_apart(status):
            f.by_status.setdefault(status, Tally()).add(total)
            f.drafts_and_archived.setdefault(normalize(status), Tally()).add(total)
            return
        if not is_owed(status):
            f.by_status.setdefault(status, Tally()).add(total)
            return
        if is_unknown(status):
            s.unknown_statuses[status] = s.unknown_statuses.get(status, 0) + 1
        tallies = [f.by_status.setdefault(status, Tally()), f.unpaid]
        tallies.append(f.unpaid_by_customer.setdefault(inv.customer_id or "?", Tally()))
        bucket = aging_bucket(inv.due_date, self.as_of)
        if bucket is None:
            s.undated_unpaid += 1
        else:
            tallies.append(f.aging[bucket])
        late = bucket not in (None, "current")
        for t in tallies:
            t.add(total, total, late=late)
        if self.book is not None and reads_payments(inv):
            s.payments_checked += 1
            # Back-pressure: the walk waits while MAX_PENDING_FETCHES fetches are queued, so pending
            # fetches (and memory) stay bounded however far ahead the invoice pages could run.
            await self.pending.acquire()
            tg.start_soon(self._apply, inv, tallies, f, late)

    async def _apply(self, inv: Invoice, tallies: list[Tally], f: Figures, late: bool) -> None:
        assert self.book is not None and inv.id
        try:
            async with self.slots:
                got = await self.book.of_invoice(inv.id)
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
        b = balance_of(inv, got)
        self.s.payment_issues.merge(b.issues)
        total = inv.total if inv.total is not None else ZERO
        paid = total - b.balance if b.balance is not None else ZERO
        if paid > 0:
            f.with_payments += 1
            self.applied.append((paid, tallies, late))
            for t in tallies:
                t.pay(paid, late=late)


async def summarize(
    client: APIClient,
    filters: dict[str, str],
    *,
    as_of: date,
    max_invoices: int,
    progress: Progress | None = None,
    book: PaymentBook | None = None,
    keep: InvoiceTest | None = None,
) -> Summary:
    """`book`: where payments come from; without it balances equal totals (no payment requests).
    `keep`: a server-side filter (service/filters.py); invoices it rejects are not counted."""
    s = Summary()
    fold = SummaryFold(s, as_of, book)
    async with anyio.create_task_group() as tg:
        fold.scope = tg.cancel_scope
        try:
            await _walk(client, filters, s, fold, tg, max_invoices, progress, keep)
        except Exception as exc:
            fold.fail(exc)
    if fold.error is not None:
        raise fold.error
    for f in s.by_currency.values():
        for b in f.by_status.values():
            b.total = to_cents(b.total)
    s.by_currency = dict(sorted(s.by_currency.items(), key=lambda kv: (-kv[1].count, kv[0] != "USD", kv[0])))
    return s


async def _walk(
    client: APIClient,
    filters: dict[str, str],
    s: Summary,
    fold: SummaryFold,
    tg: TaskGroup,
    max_invoices: int,
    progress: Progress | None,
    keep: InvoiceTest | None = None,
) -> None:
    count = 0
    read = 0  # with a server-side filter, max_invoices bounds the invoices read, not only those kept
    async for page in walk(lambda after: client.list_invoices(limit=PAGE_SIZE, after=after, **filters)):
        for inv in page.data:
            read += 1
            if keep is not None and read > max_invoices:
                s.truncated = True
                break
            if keep is not None and not keep(inv):
                continue
            if count >= max_invoices:
                s.truncated = True
                break
            count += 1
            if "total" in inv.invalid_amounts:
                s.invalid_totals += 1
            await fold.add(inv, tg)
        if progress is not None:
            await progress(count, f"{count} invoices read")
        if s.truncated:
            return
        if (count >= max_invoices or (keep is not None and read >= max_invoices)) and page.has_next_page:
            s.truncated = True
            return
