"""Which invoice a payment paid, found exactly and remembered.

A Payment carries no invoice id; the API only filters by one (``/payments?invoice_id=``). So a
payment is attributed by walking the payments of its customer's invoices until it turns up, never
by matching amounts. What a walk finds (every payment of that invoice, not only the one asked
about) goes into an index per account in the state store, so each payment is attributed once,
across restarts. A call spends at most ``MAX_WALKS_PER_CALL`` invoice walks; rows still unknown
then are reported as not attributed (the next call goes on from there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from cachetools import TTLCache

from invoice_mcp.api.models import PAGE_SIZE, Invoice, InvoiceStatus, Page, Payment
from invoice_mcp.service.paging import walk
from invoice_mcp.service.payments import PAYMENTS_CACHE_TTL_S
from invoice_mcp.state import LazyStore, Schema, Tx, step

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.service.payments import PaymentBook

ATTRIBUTION_SCHEMA: Final = Schema.of(
    "payment_invoices",
    step(
        """CREATE TABLE payment_invoices (
            scope TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            invoice_id TEXT NOT NULL,
            invoice_number TEXT,
            PRIMARY KEY (scope, payment_id)
        )""",
    ),
)
MAX_WALKS_PER_CALL: Final = 200
"""Invoice payment walks (one request each, most invoices have < 100 payments) per call."""
MAX_CUSTOMER_PAGES: Final = 5
"""Pages of a customer's invoices read as candidates (per listing: live, then archived)."""
MAX_FAILED_PAGES: Final = 10
"""Pages of failed payments the failed-attempt filter reads (1,000 payments)."""
_IN_BATCH: Final = 200
WALKED_REMEMBERED: Final = 4096

Target = tuple[str, str | None]
"""(invoice id, invoice number)."""


@dataclass
class Attributed:
    invoices: dict[str, Target] = field(default_factory=dict)
    """payment id -> the invoice it belongs to, for the rows asked about."""
    standalone: set[str] = field(default_factory=set)
    """Payment ids found on none of their customer's invoices (every candidate walked)."""
    unknown: set[str] = field(default_factory=set)
    """Payment ids not attributed within this call's budget (or with no customer to look under)."""
    walks: int = 0


def _nearest_first(candidates: Sequence[Invoice], created_at: str) -> list[Invoice]:
    before = [i for i in candidates if (i.created_at or "") <= created_at]
    after = [i for i in candidates if (i.created_at or "") > created_at]
    before.sort(key=lambda i: i.created_at or "", reverse=True)
    after.sort(key=lambda i: i.created_at or "")
    return before + after


class PaymentIndex:
    """The attribution index of one account (`scope`), in the process's state store when there is
    one (else in memory only)."""

    def __init__(self, client: APIClient, book: PaymentBook, store: LazyStore | None, scope: str) -> None:
        self.client = client
        self.book = book
        self.store = store
        self.scope = scope
        self._known: dict[str, Target] = {}
        self._standalone: set[str] = set()
        self._walked: TTLCache[str, bool] = TTLCache(WALKED_REMEMBERED, PAYMENTS_CACHE_TTL_S)
        """Invoices walked lately: what they hold is indexed, so a later call goes on past them
        (as long as the payments cache would answer the same)."""

    async def _lookup(self, ids: Sequence[str]) -> None:
        want = [i for i in ids if i not in self._known]
        if not want or self.store is None:
            return
        store = await self.store.get(ATTRIBUTION_SCHEMA)

        def read(tx: Tx) -> list[tuple[str, str, str | None]]:
            out: list[tuple[str, str, str | None]] = []
            for k in range(0, len(want), _IN_BATCH):
                part = want[k : k + _IN_BATCH]
                marks = ",".join("?" * len(part))
                rows = tx.fetchall(
                    "SELECT payment_id, invoice_id, invoice_number FROM payment_invoices "
                    f"WHERE scope = ? AND payment_id IN ({marks})",
                    (self.scope, *part),
                )
                out.extend((str(r[0]), str(r[1]), r[2]) for r in rows)
            return out

        for pid, inv_id, number in await store.transaction(read, write=False):
            self._known[pid] = (inv_id, number)

    async def _save(self, found: dict[str, Target]) -> None:
        if not found or self.store is None:
            return
        store = await self.store.get(ATTRIBUTION_SCHEMA)

        def write(tx: Tx) -> None:
            for pid, (inv_id, number) in found.items():
                tx.execute(
                    "INSERT INTO payment_invoices (scope, payment_id, invoice_id, invoice_number) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (scope, payment_id) DO NOTHING",
                    (self.scope, pid, inv_id, number),
                )

        await store.transaction(write)

    async def _candidates(self, customer_id: str) -> list[Invoice]:
        out: list[Invoice] = []
        for status in (None, InvoiceStatus.ARCHIVED):

            async def fetch(after: str | None, status: str | None = status) -> Page[Invoice]:
                return await self.client.list_invoices(
                    limit=PAGE_SIZE, after=after, customer_id=customer_id, status=status
                )

            async for page in walk(fetch, max_pages=MAX_CUSTOMER_PAGES):
                out.extend(i for i in page.data if i.id and i.customer_id == customer_id)
        return out

    def record(self, target: Target, payments: Sequence[Payment]) -> dict[str, Target]:
        """Remember what one invoice's walk showed (returns what is new)."""
        new = {p.id: target for p in payments if p.id and p.id not in self._known}
        self._known.update(new)
        return new

    async def attribute(self, payments: Sequence[Payment], *, invoice: Target | None = None) -> Attributed:
        """The invoice of every payment in `payments` (all of them, within this call's budget).
        `invoice`: the rows were listed for that invoice (`/payments?invoice_id=`), so they belong to it."""
        out = Attributed()
        ids = [p.id for p in payments if p.id]
        if invoice is not None and invoice[0]:
            await self._save(self.record(invoice, payments))
        await self._lookup(ids)
        missing: dict[str | None, set[str]] = {}
        for p in payments:
            if p.id and p.id not in self._known:
                missing.setdefault(p.customer_id or None, set()).add(p.id)
        found: dict[str, Target] = {}
        budget_left = True
        when = {p.id: p.created_at or "" for p in payments if p.id}
        for customer_id, wanted in missing.items():
            if customer_id is None:
                continue
            candidates = await self._candidates(customer_id)
            # An invoice precedes its payments: each missing payment tries the invoices created at or
            # before it, nearest first, then the rest (never skipped: hostile clocks); in turns.
            queues = {pid: _nearest_first(candidates, when.get(pid, "")) for pid in wanted}
            walked = self._walked
            while budget_left:
                left = [pid for pid in sorted(wanted) if pid not in self._known]
                if not left:
                    break
                picked = False
                for pid in left:
                    if pid in self._known:
                        continue
                    queue = queues[pid]
                    while queue and (queue[0].id or "") in walked:
                        queue.pop(0)
                    if not queue:
                        continue
                    if out.walks >= MAX_WALKS_PER_CALL:
                        budget_left = False
                        break
                    inv = queue.pop(0)
                    walked[inv.id or ""] = True
                    got = await self.book.of_invoice(inv.id or "")
                    out.walks += 1
                    found |= self.record((inv.id or "", inv.invoice_number), got.payments)
                    picked = True
                if not picked:
                    self._standalone |= {pid for pid in left if not queues[pid] and pid not in self._known}
                    break
        await self._save(found)
        for pid in ids:
            if pid in self._known:
                out.invoices[pid] = self._known[pid]
            elif pid in self._standalone:
                out.standalone.add(pid)
            else:
                out.unknown.add(pid)
        return out

    async def failed_invoices(self) -> tuple[frozenset[str], int]:
        """Ids of invoices with at least one failed payment attempt, and how many failed payments
        could not be attributed (budget, no customer, or more failed payments than are read)."""
        failed: list[Payment] = []
        more = False
        async for page in walk(
            lambda after: self.client.list_payments(limit=PAGE_SIZE, after=after, status="failed"),
            max_pages=MAX_FAILED_PAGES,
        ):
            failed.extend(p for p in page.data if (p.status or "").lower() == "failed")
            more = page.has_next_page
        got = await self.attribute(failed)
        left = len(got.unknown) + (1 if more else 0)
        return frozenset(t[0] for t in got.invoices.values()), left
