"""InvoiceService: the one object tools talk to. It composes the jobs (chunks,
customers, summaries, writes) over one API client and resolves references
(an invoice id or a number like INV-1042; a customer name)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio

from invoice_mcp.api.errors import APIError, CredentialsError, NotFoundError
from invoice_mcp.api.models import Customer, Invoice, InvoiceStatus, Link, Payment
from invoice_mcp.service.attribution import Attributed, PaymentIndex
from invoice_mcp.service.balances import Balance, balance_of, reads_payments
from invoice_mcp.service.chunks import Chunk, ChunkReader
from invoice_mcp.service.cursors import DIFFERENT_FILTERS, START, CursorCodec, CursorError, Position
from invoice_mcp.service.customers import Customers
from invoice_mcp.service.errors import DuplicateInvoice, InvalidCursor, NotFound, UnusableLink
from invoice_mcp.service.filters import InvoiceTest, api_params, matcher
from invoice_mcp.service.guard import Clock, Reservations
from invoice_mcp.service.journal import Attribution, Journal, scope_of
from invoice_mcp.service.payments import (
    CONCURRENT_FETCHES,
    InvoicePayments,
    Ledger,
    PaymentBook,
    PaymentCursors,
    ledger,
    no_ledger,
)
from invoice_mcp.service.query import InvoiceQuery, PaymentQuery, SealedQuery
from invoice_mcp.service.statuses import is_owed
from invoice_mcp.service.summaries import Progress, Summary, summarize
from invoice_mcp.service.writes import InvoiceToCreate, Writer

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.state import LazyStore

_NUMBER_RE: Final = re.compile(r"^[A-Za-z]{1,10}-\d{1,12}$")
MAX_LINK: Final = 2048
_LINK_RE: Final = re.compile(r"^https://[A-Za-z0-9.-]{1,253}(?::\d{1,5})?(?:[/?#][!-~]*)?$")
"""One line of printable ASCII, https, a plain host (no userinfo: `https://bank.com@evil.example`)."""


def usable_link(link: Link, kind: str, invoice_id: str) -> Link:
    """`link` if its url is a single-line https URL of sane length; else UnusableLink (which never
    repeats the url: it is a bearer secret, or hostile text)."""
    url = link.url or ""
    if len(url) <= MAX_LINK and _LINK_RE.match(url):
        return link
    problem = "no link" if not url else "too long" if len(url) > MAX_LINK else "not a single-line https URL"
    raise UnusableLink(
        f"the API returned an unusable {kind} link for invoice {invoice_id} ({problem}); it is not shown. "
        "Retry later, or open the invoice in the Alternative Payments dashboard."
    )


def looks_like_number(value: str) -> bool:
    return bool(_NUMBER_RE.match(value))


@dataclass
class Listed:
    chunk: Chunk[Invoice]
    names: dict[str, str]
    """Customer names of the rows, by customer id."""
    customer: str | None
    """The resolved customer name, when the query named one."""
    query: InvoiceQuery
    """The query in force, resolved (from the call, or the one its cursor carried)."""
    balances: list[Balance | None] = field(default_factory=list)
    """Per row (same order), by the one balance rule; None where its payments could not be read."""
    payments_unavailable: APIError | None = None
    failed_unattributed: int = 0
    """With the failed-payment filter: failed payments it could not tie to an invoice (then the
    list may miss invoices)."""


@dataclass
class PaymentsListed:
    chunk: Chunk[Payment]
    names: dict[str, str]
    customer: str | None
    invoice: str | None
    """The invoice the query named (its number when it was given as one)."""
    attributed: Attributed = field(default_factory=Attributed)
    """The invoice of each row (service/attribution.py)."""


@dataclass(frozen=True)
class ResolvedPayments:
    """A payment query with its names resolved, and what the resolution found."""

    query: PaymentQuery
    customer: str | None = None
    invoice: str | None = None
    found: Invoice | None = None
    """The invoice, when the query gave its number (looked up to find its id)."""


Q = TypeVar("Q", bound=SealedQuery)


def open_cursor(reader: ChunkReader[Any], cursor: str, kind: type[Q], name: str) -> tuple[Position, Q, bool]:
    """The position, sealed query and direction of `cursor`: decoded once per call, and checked
    before anything is fetched. `name`: how the refusal calls the cursor."""
    try:
        at, sealed, back = reader.cursors.decode(cursor)
        return at, kind.unsealed(sealed), back
    except CursorError as exc:
        raise InvalidCursor(str(exc).replace("next_cursor", name)) from None
    except ValueError:
        raise InvalidCursor(f"cursor is not valid: pass {name} exactly as returned") from None


def same_query(given: SealedQuery, sealed: SealedQuery) -> None:
    """A call that repeats its filters next to a cursor must repeat them exactly."""
    if given.sealed() != sealed.sealed():
        raise InvalidCursor(DIFFERENT_FILTERS)


class InvoiceService:
    def __init__(
        self,
        client: APIClient,
        *,
        cursor_key: bytes,
        reservations: Reservations | None = None,
        clock: Clock | None = None,
        journal: Journal | None = None,
        state: LazyStore | None = None,
    ) -> None:
        self.client = client
        self.clock: Clock = clock or client.clock.now
        """The API's time (its responses' Date headers) unless a test injects another."""
        self.chunks: ChunkReader[Invoice] = ChunkReader(client.list_invoices, CursorCodec(cursor_key))
        self.customers = Customers(client)
        self.journal = journal
        self.writer = Writer(client, reservations, clock=clock, scope=client.settings.cache_key, journal=journal)
        self.payments = PaymentBook(client)
        self.payment_lists: ChunkReader[Payment] = ChunkReader(
            client.list_payments, PaymentCursors(cursor_key), cached_pages=256
        )
        self.attribution = PaymentIndex(client, self.payments, state, scope_of(client.settings.cache_key))

    def today(self) -> date:
        """Today's UTC date on the API's clock (the reference of "days past due" when no as_of
        is given); `await client.sync_clock()` first where nothing has been fetched yet."""
        return self.clock().astimezone(UTC).date()

    async def api_today(self) -> date:
        """`today()` once the API has told its time (before anything else is fetched)."""
        await self.client.sync_clock()
        return self.today()

    # -- reading -----------------------------------------------------------------

    async def resolve(self, query: InvoiceQuery, *, as_of: str | None = None) -> tuple[InvoiceQuery, str | None]:
        """`query` as a cursor seals it: a customer name resolved to its id (the name is returned
        too), and as_of given (else `as_of`), or today on the API's clock where a days-past-due
        filter needs a date. Without one, each chunk counts days late from its own today."""
        update: dict[str, Any] = {"as_of": query.as_of or as_of}
        if update["as_of"] is None and query.min_days_past_due is not None:
            update["as_of"] = (await self.api_today()).isoformat()
        name = None
        if query.customer:
            customer = await self.customers.resolve(query.customer)
            update |= {"customer": None, "customer_id": customer.id or None}
            name = customer.name
        fields = query.model_dump(include=set(InvoiceQuery.FIELDS)) | update
        return InvoiceQuery.model_construct(**fields), name

    async def invoice_test(self, query: InvoiceQuery) -> tuple[InvoiceTest | None, int]:
        """The test of the query's server-side filters (None when it has none), and how many
        failed payments the failed-attempt filter could not attribute."""
        if not query.server_side:
            return None, 0
        ids: frozenset[str] = frozenset()
        if query.text:
            needle = query.text.casefold()
            directory = await self.customers.directory()
            ids = frozenset(c.id for c in directory if c.id and needle in (c.name or "").casefold())
        failed: frozenset[str] | None = None
        left = 0
        if query.failed_payment:
            failed, left = await self.attribution.failed_invoices()
        return matcher(query, ids, failed), left

    async def list_invoices(self, query: InvoiceQuery, limit: int, cursor: str | None) -> Listed:
        """One chunk. A cursor is decoded once, before anything is fetched; with a cursor the query
        may be empty (the cursor carries it) or must equal the cursor's own."""
        at, back, name = START, False, None
        if cursor:
            at, sealed, back = open_cursor(self.chunks, cursor, InvoiceQuery, "next_cursor")
            if not query.empty:
                given, name = await self.resolve(query, as_of=sealed.as_of)
                same_query(given, sealed)
            query = sealed
        else:
            query, name = await self.resolve(query)
        try:
            params = api_params(query)
        except ValueError:
            raise InvalidCursor("cursor is not valid: pass next_cursor exactly as returned") from None
        keep, failed_left = await self.invoice_test(query)
        chunk = await self.chunks.chunk(params, query.sealed(), limit, at, back=back, keep=keep)
        names = await self.customers.names({i.customer_id for i in chunk.rows if i.customer_id})
        balances, unavailable = await self.balances(chunk.rows)
        return Listed(
            chunk=chunk,
            names=names,
            customer=name,
            query=query,
            balances=balances,
            payments_unavailable=unavailable,
            failed_unattributed=failed_left,
        )

    async def balances(self, rows: list[Invoice]) -> tuple[list[Balance | None], APIError | None]:
        """Each row's balance by the one rule: payments are read (a few at a time, through the same
        cache as summaries) only for rows whose status says money may be applied."""
        out: list[Balance | None] = [None] * len(rows)
        failure: list[APIError] = []
        slots = anyio.CapacityLimiter(CONCURRENT_FETCHES)

        async def one(i: int, inv: Invoice) -> None:
            try:
                async with slots:
                    got = await self.payments.of_invoice(inv.id or "")
            except (CredentialsError, NotFoundError) as exc:
                failure.append(exc)
                return
            out[i] = balance_of(inv, got)

        async with anyio.create_task_group() as tg:
            for i, inv in enumerate(rows):
                if reads_payments(inv) and is_owed(inv.status):
                    tg.start_soon(one, i, inv)
                else:
                    out[i] = balance_of(inv, None)
        return out, failure[0] if failure else None

    async def summarize(
        self,
        query: InvoiceQuery,
        *,
        as_of: date,
        max_invoices: int,
        progress: Progress | None = None,
        balances: bool = True,
    ) -> tuple[Summary, str | None]:
        query, name = await self.resolve(query, as_of=as_of.isoformat())
        keep, failed_left = await self.invoice_test(query)
        s = await summarize(
            self.client,
            api_params(query),
            as_of=as_of,
            max_invoices=max_invoices,
            progress=progress,
            book=self.payments if balances else None,
            keep=keep,
        )
        s.failed_unattributed = failed_left
        return s, name

    async def resolve_invoice(self, ref: str) -> Invoice:
        """`ref` is an invoice id or a number like INV-1042 (one filtered request;
        a second one looks among archived invoices, which lists hide)."""
        ref = ref.strip()
        if looks_like_number(ref):
            for status in (None, InvoiceStatus.ARCHIVED):
                page = await self.client.list_invoices(limit=2, invoice_number=ref, status=status)
                exact = [i for i in page.data if (i.invoice_number or "").lower() == ref.lower()]
                if exact:
                    return exact[0]
            raise NotFound("invoice", ref)
        try:
            return await self.client.get_invoice(ref)
        except NotFoundError:
            raise NotFound("invoice", ref) from None

    async def invoice_id(self, ref: str) -> tuple[str, Invoice | None]:
        """The id for `ref`, resolving a number with one request; the id itself costs nothing."""
        if looks_like_number(ref.strip()):
            inv = await self.resolve_invoice(ref)
            if not inv.id:
                raise NotFound("invoice", ref)
            return inv.id, inv
        return ref.strip(), None

    async def customer_name(self, customer_id: str | None) -> str | None:
        return await self.customers.name(customer_id)

    async def customer_names(self, ids: set[str]) -> dict[str, str]:
        return await self.customers.names(ids)

    async def customer_directory(self) -> list[Customer]:
        return await self.customers.directory()

    async def customer_coverage(self) -> tuple[list[Customer], bool]:
        """The directory and whether it is partial (more customers than it holds)."""
        return await self.customers.coverage()

    async def find_customers(self, name: str) -> list[Customer]:
        return await self.customers.find(name)

    async def search_customers(self, name: str) -> tuple[list[Customer], bool]:
        """Matches, and whether more may exist than were searched."""
        return await self.customers.search(name)

    async def payment_link(self, invoice_id: str) -> Link:
        return await self._link(self.client.get_payment_link, "payment", invoice_id)

    async def pdf_link(self, invoice_id: str) -> Link:
        return await self._link(self.client.get_pdf_link, "PDF", invoice_id)

    async def _link(self, get: Callable[[str], Awaitable[Link]], kind: str, invoice_id: str) -> Link:
        try:
            link = await get(invoice_id)
        except NotFoundError:
            raise NotFound("invoice", invoice_id) from None
        return usable_link(link, kind, invoice_id)

    # -- payments ----------------------------------------------------------------

    async def invoice_ledger(self, inv: Invoice) -> Ledger:
        """The invoice's payments and balance (one upstream request, cached briefly)."""
        try:
            payments = await self.payments.of_invoice(inv.id) if inv.id else InvoicePayments([])
        except APIError as exc:
            # The invoice is known; its payments are not (no payments scope, or the API failing): show the
            # invoice and say so, rather than fail the whole lookup.
            return no_ledger(exc)
        return ledger(inv, payments)

    async def resolve_payments(self, query: PaymentQuery) -> ResolvedPayments:
        """`query` as a cursor seals it: a customer name resolved to its id, an invoice number to
        the invoice's id."""
        update: dict[str, Any] = {}
        customer = invoice = None
        found: Invoice | None = None
        if query.customer:
            c = await self.customers.resolve(query.customer)
            update |= {"customer": None, "customer_id": c.id or None}
            customer = c.name
        if query.invoice:
            invoice_id, found = await self.invoice_id(query.invoice)
            update["invoice"] = invoice_id
            invoice = (found.invoice_number if found else None) or invoice_id
        fields = query.model_dump(include=set(PaymentQuery.FIELDS)) | update
        return ResolvedPayments(PaymentQuery.model_construct(**fields), customer, invoice, found)

    async def list_payments(self, query: PaymentQuery, limit: int, cursor: str | None) -> PaymentsListed:
        """One chunk of payments (newest first). A cursor is decoded once, before anything is
        fetched, and carries the query; given with a cursor, the query must be empty or the cursor's own."""
        at, back = START, False
        sealed: PaymentQuery | None = None
        if cursor:
            at, sealed, back = open_cursor(self.payment_lists, cursor, PaymentQuery, "the payments cursor")
        resolved = ResolvedPayments(sealed) if sealed is not None and query.empty else None
        if resolved is None:
            resolved = await self.resolve_payments(query)
        if sealed is not None:
            same_query(resolved.query, sealed)
        effective = resolved.query
        chunk = await self.payment_lists.chunk(effective.api_params(), effective.sealed(), limit, at, back=back)
        if query.invoice and resolved.found is None and not chunk.rows and not cursor:
            await self.resolve_invoice(query.invoice)  # no payments, or no such invoice? (NotFound)
        names = await self.customers.names({p.customer_id for p in chunk.rows if p.customer_id})
        found = resolved.found
        target = (effective.invoice, found.invoice_number if found else None) if effective.invoice else None
        attributed = await self.attribution.attribute(chunk.rows, invoice=target)
        return PaymentsListed(
            chunk=chunk, names=names, customer=resolved.customer, invoice=resolved.invoice, attributed=attributed
        )

    # -- writing -----------------------------------------------------------------

    def forget(self) -> None:
        """After a write (whatever its outcome), cached invoice pages and payments may be stale."""
        self.chunks.forget()
        self.payments.forget()

    async def recent_duplicate(self, draft: InvoiceToCreate) -> DuplicateInvoice | None:
        """What the guard already knows of an identical create (no API call): a quick refusal."""
        return await self.writer.recent_duplicate(draft)

    async def possible_duplicate(self, draft: InvoiceToCreate) -> DuplicateInvoice | None:
        """What a create of `draft` would be refused for now (for previews; claims nothing)."""
        return await self.writer.possible_duplicate(draft)

    async def create(
        self, draft: InvoiceToCreate, *, allow_duplicate: bool = False, who: Attribution | None = None, **kw: Any
    ) -> Invoice:
        """Create through the duplicate guard; raises DuplicateInvoice, PossiblyCreated, NotFound."""
        try:
            return await self.writer.create(draft, allow_duplicate=allow_duplicate, who=who, **kw)
        finally:
            self.forget()

    async def archive(self, invoice_id: str, *, who: Attribution | None = None, **kw: Any) -> Invoice:
        try:
            return await self.writer.archive(invoice_id, who=who, **kw)
        finally:
            self.forget()

    async def restore(self, invoice_id: str, *, who: Attribution | None = None, **kw: Any) -> Invoice:
        try:
            return await self.writer.restore(invoice_id, who=who, **kw)
        finally:
            self.forget()
