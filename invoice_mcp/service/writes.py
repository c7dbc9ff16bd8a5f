"""Writes: create (through the duplicate guard of service/guard.py), archive, restore.

The tool layer describes an invoice as a `InvoiceToCreate`; only this module builds the
wire model."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, TypeVar, Unpack

import anyio

from invoice_mcp.api.errors import AmbiguousWriteError, APIError, NotFoundError, SharedStateError
from invoice_mcp.api.models import PAGE_SIZE, Invoice, InvoiceStatus, NewInvoice, NewLineItem, Page
from invoice_mcp.service.errors import DuplicateInvoice, GuardUnavailable, NotFound, PossiblyCreated
from invoice_mcp.service.guard import (
    CLOCK_SKEW_S,
    DUPLICATE_WINDOW_S,
    PENDING_TTL_S,
    Clock,
    LocalReservations,
    Record,
    Reservations,
    fingerprint,
    invoice_fingerprint,
    rfc3339,
)
from invoice_mcp.service.journal import Attribution, Journal
from invoice_mcp.service.paging import walk
from invoice_mcp.state import StateError
from invoice_mcp.text import clean, to_cents

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class LineToCreate:
    description: str
    amount: Decimal
    """Unit price, dollars."""
    quantity: int


@dataclass(frozen=True)
class InvoiceToCreate:
    """An invoice to create, as the user described it."""

    customer_id: str
    lines: tuple[LineToCreate, ...]
    due_date: str | None = None
    currency: str = "USD"
    exclude_from_autopay: bool | None = None

    @property
    def total(self) -> Decimal:
        return to_cents(sum((li.amount * li.quantity for li in self.lines), Decimal("0")))

    def wire(self) -> NewInvoice:
        return NewInvoice(
            customer_id=self.customer_id,
            currency=self.currency,
            due_date=self.due_date,
            exclude_from_autopay=self.exclude_from_autopay,
            line_items=[
                NewLineItem(description=li.description, amount=li.amount, quantity=li.quantity) for li in self.lines
            ],
        )


def draft_fingerprint(draft: InvoiceToCreate, *, today: str) -> str:
    return fingerprint(
        draft.customer_id,
        draft.currency,
        draft.due_date,
        [(li.description, li.amount, li.quantity) for li in draft.lines],
        today=today,
    )


class ChangeOptions(TypedDict, total=False):
    """What an archive or restore may be told: who asked, which tool (default archive_invoice /
    restore_invoice), its batch (id, row) and the invoice as read before (for the journal)."""

    who: Attribution | None
    tool: str
    batch: tuple[str, int] | None
    previous: Invoice | None


class Writer:
    """Creates go through the duplicate guard (service/guard.py); archive/restore are idempotent."""

    RECENT_PAGES: Final = 100
    """The API check reads every page of the customer's invoices in its window, up to this
    many (10,000 invoices); beyond that it cannot vouch for the create and refuses it."""

    def __init__(
        self,
        client: APIClient,
        reservations: Reservations | None = None,
        *,
        clock: Clock | None = None,
        scope: str = "",
        skew_s: float = CLOCK_SKEW_S,
        journal: Journal | None = None,
    ) -> None:
        self.client = client
        self.reservations: Reservations = reservations or LocalReservations()
        self._clock = clock or client.clock.now
        self._scope = scope
        self._lookback = timedelta(seconds=DUPLICATE_WINDOW_S + skew_s)
        self.journal = journal

    def today(self) -> str:
        return self._clock().date().isoformat()

    async def _journal(self, op: Awaitable[_T]) -> _T:
        return await _needed(op, StateError, _JOURNAL_DOWN)

    async def _remembered(self, draft: InvoiceToCreate) -> Record | None:
        """What the journal (durable, shared by replicas on one store) knows of this fingerprint."""
        if self.journal is None:
            return None
        since = self._clock() - timedelta(seconds=DUPLICATE_WINDOW_S)
        entry = await self._journal(self.journal.by_fingerprint(draft_fingerprint(draft, today=self.today()), since))
        if entry is None:
            return None
        at = entry.started_at[:19] + "Z"
        if entry.outcome == "created":
            return Record(
                "created",
                draft.customer_id,
                at,
                invoice_id=entry.invoice_id,
                invoice_number=entry.invoice_number,
            )
        return Record("possibly", draft.customer_id, at)

    async def _settle_journal(self, entry_id: int | None, outcome: Any, **kw: Any) -> None:
        if self.journal is not None and entry_id is not None:
            settled = self.journal.outcome(entry_id, outcome, **kw)
            await _after_the_fact(settled, StateError, "journal: a write's outcome")

    def _key(self, draft: InvoiceToCreate) -> str:
        today = self._clock().date().isoformat()
        return hashlib.sha256(f"{self._scope}|{draft_fingerprint(draft, today=today)}".encode()).hexdigest()

    async def _store(self, op: Awaitable[_T]) -> _T:
        return await _needed(op, SharedStateError, _GUARD_DOWN)

    async def recent_duplicate(self, draft: InvoiceToCreate) -> DuplicateInvoice | None:
        """A quick look (no invoice read) at what this server, or its replicas, know of this fingerprint."""
        await self.client.sync_clock()
        key = self._key(draft)
        raw = await self._store(self.reservations.get(key))
        record = Record.loads(raw) if raw else await self._remembered(draft)
        return _refusal(await self._landed(key, draft, record)) if record else None

    async def possible_duplicate(self, draft: InvoiceToCreate) -> DuplicateInvoice | None:
        """For a preview: what a create of `draft` would be refused for now, without claiming anything:
        the guard's own record, else an invoice the API already has with the same fingerprint
        within the guard's window (one walk of the customer's recent invoices)."""
        known = await self.recent_duplicate(draft)
        if known is not None:
            return known
        found = await self._recent_on_api(draft, self._clock() - self._lookback)
        if found is None or not found.id:
            return None
        return _refusal(_created(draft, found.created_at or "", found, source="api"))

    async def _landed(self, key: str, draft: InvoiceToCreate, record: Record) -> Record:
        """A "possibly created" record, turned into "created" if the invoice has since shown up."""
        if record.state != "possibly":
            return record
        found = await self._recent_on_api(draft, self._clock() - self._lookback)
        if found is None or not found.id:
            return record
        record = _created(draft, record.at, found, source="api")
        await self._store(self.reservations.put(key, record.dumps(), DUPLICATE_WINDOW_S))
        return record

    async def _recent_on_api(self, draft: InvoiceToCreate, since: datetime) -> Invoice | None:
        """An invoice the API already has with this fingerprint, created since `since`."""
        today = self._clock().date().isoformat()
        want = draft_fingerprint(draft, today=today)

        async def fetch(after: str | None) -> Page[Invoice]:
            return await self.client.list_invoices(
                limit=PAGE_SIZE, customer_id=draft.customer_id, created_at_start=rfc3339(since), after=after
            )

        pages = 0
        async for page in walk(fetch, max_pages=self.RECENT_PAGES):
            pages += 1
            for inv in page.data:
                if inv.status == InvoiceStatus.ARCHIVED:
                    continue
                if invoice_fingerprint(inv, today=today) == want:
                    return inv
            if pages >= self.RECENT_PAGES and page.has_next_page:
                raise GuardUnavailable(
                    f"not created: this customer has more than {self.RECENT_PAGES * PAGE_SIZE:,} invoices in the "
                    "last 40 minutes, too many to check for an identical one; nothing was sent. If this invoice "
                    "is really wanted, call again with allow_duplicate=true."
                )
        return None

    async def create(
        self,
        draft: InvoiceToCreate,
        *,
        allow_duplicate: bool = False,
        who: Attribution | None = None,
        tool: str = "create_invoice",
        batch: tuple[str, int] | None = None,
        recent: Mapping[str, Invoice] | None = None,
    ) -> Invoice:
        """Create through the guard, journaled. ``batch`` is (batch id, row) for a batch row;
        ``recent`` the account's recent invoices by fingerprint, fetched once for a whole batch
        (instead of one look at the API per row)."""
        await self.client.sync_clock()
        now = self._clock()
        key = self._key(draft)
        mine = Record("pending", draft.customer_id, rfc3339(now), owner=Record.new_owner())
        if not allow_duplicate:
            await self._claim(key, mine, draft, now, recent)
        try:
            entry_id = await self._intent(
                who,
                tool,
                _arguments(draft, allow_duplicate),
                batch,
                customer_id=draft.customer_id,
                fingerprint=draft_fingerprint(draft, today=self.today()),
                total=str(draft.total),
            )
        except BaseException:
            await self._release(key, mine)
            raise
        return await self._send(key, mine, draft, entry_id)

    async def _claim(
        self, key: str, mine: Record, draft: InvoiceToCreate, now: datetime, recent: Mapping[str, Invoice] | None
    ) -> None:
        """Reserve this fingerprint for `mine`, or refuse the create: another call holds it, the
        journal remembers it, or the API already has an identical invoice in the window."""
        held = await self._store(self.reservations.claim(key, mine.dumps(), PENDING_TTL_S))
        if held is not None:
            record = Record.loads(held) or Record("pending", draft.customer_id, mine.at)
            raise _refusal(await self._landed(key, draft, record))
        try:
            remembered = await self._remembered(draft)
            if remembered is not None:
                remembered = await self._landed(key, draft, remembered)
                await self._store(self.reservations.put(key, remembered.dumps(), DUPLICATE_WINDOW_S))
                raise _refusal(remembered)
            if recent is not None:
                found = recent.get(draft_fingerprint(draft, today=self.today()))
            else:
                found = await self._recent_on_api(draft, now - self._lookback)
        except DuplicateInvoice:
            raise
        except BaseException:
            await self._release(key, mine)
            raise
        if found is not None and found.id:
            record = _created(draft, found.created_at or mine.at, found, source="api")
            await self._store(self.reservations.put(key, record.dumps(), DUPLICATE_WINDOW_S))
            raise _refusal(record)

    async def _send(self, key: str, mine: Record, draft: InvoiceToCreate, entry_id: int | None) -> Invoice:
        """The POST, sent once: its outcome settles the reservation and the journal entry."""
        try:
            inv = await self.client.create_invoice(draft.wire())
        except AmbiguousWriteError as exc:
            await self._settle(key, replace(mine, state="possibly"))
            await self._settle_journal(entry_id, "possibly", detail=exc.message)
            raise PossiblyCreated(exc.message, draft.customer_id, mine.at) from None
        except NotFoundError:
            await self._release(key, mine)
            await self._settle_journal(entry_id, "failed", detail="customer not found")
            raise NotFound("customer", draft.customer_id) from None
        except APIError as exc:  # a definite answer: the API did not create it
            await self._release(key, mine)
            await self._settle_journal(entry_id, "failed", detail=exc.message)
            raise
        except BaseException:  # cancelled or crashed while the POST was in flight: it may exist
            await self._settle(key, replace(mine, state="possibly"))
            await self._settle_journal(entry_id, "possibly", detail="interrupted while the request was in flight")
            raise
        await self._settle(key, _created(draft, mine.at, inv, source="server", owner=mine.owner))
        await self._settle_journal(entry_id, "created", invoice_id=inv.id, invoice_number=inv.invoice_number)
        return inv

    async def _intent(
        self,
        who: Attribution | None,
        tool: str,
        arguments: Mapping[str, Any],
        batch: tuple[str, int] | None,
        **fields: Any,
    ) -> int | None:
        """The journal entry of a write about to be sent (None without a journal)."""
        if self.journal is None:
            return None
        batch_id, batch_row = batch if batch else (None, None)
        intent = self.journal.intent(
            who or Attribution(), tool, arguments, batch_id=batch_id, batch_row=batch_row, **fields
        )
        return await self._journal(intent)

    async def recent_invoices(self) -> dict[str, Invoice]:
        """Every invoice of the account created within the duplicate window, by fingerprint
        (a few pages at most): one look serves a whole batch."""
        await self.client.sync_clock()
        since = self._clock() - timedelta(seconds=DUPLICATE_WINDOW_S)
        today = self.today()

        async def fetch(after: str | None) -> Page[Invoice]:
            return await self.client.list_invoices(limit=PAGE_SIZE, created_at_start=rfc3339(since), after=after)

        found: dict[str, Invoice] = {}
        async for page in walk(fetch, max_pages=self.RECENT_PAGES * 3):
            for inv in page.data:
                fp = invoice_fingerprint(inv, today=today)
                if fp and inv.status != InvoiceStatus.ARCHIVED:
                    found.setdefault(fp, inv)
        return found

    async def look_for(self, draft: InvoiceToCreate, since: datetime) -> Invoice | None:
        """The invoice of this draft on the API, created since ``since`` (resolves an ambiguous row)."""
        return await self._recent_on_api(draft, since)

    async def _settle(self, key: str, record: Record) -> None:
        """Record the outcome for the window; a store failure here must not hide the outcome."""
        put = self.reservations.put(key, record.dumps(), DUPLICATE_WINDOW_S)
        await _after_the_fact(put, SharedStateError, "duplicate guard: a create's outcome")

    async def _release(self, key: str, mine: Record) -> None:
        release = self.reservations.release(key, mine.dumps())
        await _after_the_fact(release, SharedStateError, "duplicate guard: the release of a reservation")

    async def archive(self, invoice_id: str, **options: Unpack[ChangeOptions]) -> Invoice:
        return await self._change("archive", invoice_id, **options)

    async def restore(self, invoice_id: str, **options: Unpack[ChangeOptions]) -> Invoice:
        return await self._change("restore", invoice_id, **options)

    async def _change(
        self,
        action: Literal["archive", "restore"],
        invoice_id: str,
        *,
        who: Attribution | None = None,
        tool: str | None = None,
        batch: tuple[str, int] | None = None,
        previous: Invoice | None = None,
    ) -> Invoice:
        entry_id = await self._intent(
            who,
            tool or f"{action}_invoice",
            {"invoice": invoice_id},
            batch,
            customer_id=previous.customer_id if previous else None,
            invoice_id=invoice_id,
            invoice_number=previous.invoice_number if previous else None,
            total=str(previous.total) if previous is not None and previous.total is not None else None,
        )
        call = self.client.archive_invoice if action == "archive" else self.client.restore_invoice
        try:
            inv = await call(invoice_id)
        except NotFoundError:
            await self._settle_journal(entry_id, "failed", detail="invoice not found")
            raise NotFound("invoice", invoice_id) from None
        except APIError as exc:
            await self._settle_journal(entry_id, "failed", detail=exc.message)
            raise
        except BaseException:
            await self._settle_journal(entry_id, "possibly", detail="interrupted while the request was in flight")
            raise
        status = f"status {clean(previous.status, 32)} → {clean(inv.status, 32)}" if previous else None
        outcome = "archived" if action == "archive" else "restored"
        if action == "restore" and inv.status == InvoiceStatus.ARCHIVED:
            outcome = "unchanged"
        await self._settle_journal(
            entry_id, outcome, invoice_id=inv.id, invoice_number=inv.invoice_number, detail=status
        )
        return inv


_JOURNAL_DOWN = "not done: the write journal is unavailable ({}); nothing was sent. Retry once it is back."
_GUARD_DOWN = (
    "not created: the duplicate guard's shared store is unavailable ({}); nothing was sent. Retry once Redis is back."
)


async def _needed(op: Awaitable[_T], error: type[Exception], refusal: str) -> _T:
    """A store a write cannot go without: when it fails, the write is refused before anything is sent."""
    try:
        return await op
    except error as exc:
        raise GuardUnavailable(refusal.format(exc)) from None


async def _after_the_fact(op: Awaitable[object], error: type[Exception], what: str) -> None:
    """Bookkeeping once a write has its outcome: finished even if the call is cancelled, and a store
    failure is logged, never allowed to hide the outcome."""
    with anyio.CancelScope(shield=True):
        try:
            await op
        except error as exc:
            log.warning("%s could not be recorded: %s", what, exc)


def _arguments(draft: InvoiceToCreate, allow_duplicate: bool) -> dict[str, Any]:
    return {
        "customer_id": draft.customer_id,
        "due_date": draft.due_date,
        "currency": draft.currency,
        "line_items": [
            {"description": li.description, "amount": str(li.amount), "quantity": li.quantity} for li in draft.lines
        ],
        "allow_duplicate": allow_duplicate,
    }


def _created(
    draft: InvoiceToCreate, at: str, inv: Invoice, *, source: Literal["server", "api"], owner: str = ""
) -> Record:
    return Record(
        "created",
        draft.customer_id,
        at,
        owner=owner,
        invoice_id=inv.id,
        invoice_number=inv.invoice_number,
        source=source,
    )


def _refusal(record: Record) -> DuplicateInvoice:
    return DuplicateInvoice(
        record.state,
        record.customer_id,
        record.at,
        invoice_id=record.invoice_id,
        invoice_number=record.invoice_number,
        source=record.source,
    )
