"""Invoice workflows on top of the API client: chunked lists, summaries,
customer names, id-or-number resolution and the duplicate-create guard.

Knows nothing of MCP: tools call it and render what it returns.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import anyio
from cachetools import TTLCache

from invoice_mcp.api.errors import InvalidRequestError, NotFoundError
from invoice_mcp.api.models import PAGE_SIZE, Customer, Invoice, InvoiceStatus, Link, NewInvoice, Page
from invoice_mcp.service.cursors import CursorCodec, CursorError, Gap
from invoice_mcp.text import q2

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient

PAGE_CACHE_TTL_S: Final = 60.0
CUSTOMER_CACHE_TTL_S: Final = 300.0
DUPLICATE_WINDOW_S: Final = 600.0
MAX_CUSTOMER_PAGES: Final = 20
_NUMBER_RE: Final = re.compile(r"^[A-Za-z]{1,10}-\d{1,12}$")

Progress = Callable[[int, str], Awaitable[None]]

FILTER_KEYS: Final = (
    "status",
    "customer_id",
    "invoice_number",
    "created_at_start",
    "created_at_end",
    "due_date_start",
    "due_date_end",
)


@dataclass
class Chunk:
    rows: list[Invoice]
    next_cursor: str | None
    prev_cursor: str | None
    has_more: bool


@dataclass
class Bucket:
    count: int = 0
    total: Decimal = Decimal("0")

    def add(self, amount: Decimal) -> None:
        self.count += 1
        self.total += amount


AGING_BUCKETS: Final = ("current", "1-30", "31-60", "61-90", "90+")


@dataclass
class Summary:
    count: int = 0
    total: Decimal = Decimal("0")
    currency: set[str] = field(default_factory=set)
    by_status: dict[str, Bucket] = field(default_factory=dict)
    unpaid_by_customer: dict[str, Bucket] = field(default_factory=dict)
    aging: dict[str, Bucket] = field(default_factory=lambda: {b: Bucket() for b in AGING_BUCKETS})
    unpaid: Bucket = field(default_factory=Bucket)
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


def looks_like_number(value: str) -> bool:
    return bool(_NUMBER_RE.match(value))


def _fingerprint(new: NewInvoice) -> str:
    body = new.to_json()
    body.pop("exclude_from_autopay", None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class AmbiguousCustomerError(InvalidRequestError):
    def __init__(self, name: str, matches: list[Customer]) -> None:
        listed = "; ".join(f"{c.name} (customer_id={c.id})" for c in matches[:10])
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        super().__init__(
            f"customer name {name!r} matches {len(matches)} customers: {listed}{more}. "
            "Ask the user which one, then pass customer_id.",
            code="ambiguous_customer",
        )
        self.matches = matches


@dataclass
class DuplicateCreate:
    invoice_id: str
    invoice_number: str | None


class InvoiceService:
    def __init__(self, client: APIClient, *, cursor_key: bytes) -> None:
        self.client = client
        self.cursors = CursorCodec(cursor_key)
        self._pages: TTLCache[tuple[str, str, str | None], Page[Invoice]] = TTLCache(512, PAGE_CACHE_TTL_S)
        self._names: TTLCache[str, str] = TTLCache(4096, CUSTOMER_CACHE_TTL_S)
        self._directory: TTLCache[str, list[Customer]] = TTLCache(1, CUSTOMER_CACHE_TTL_S)
        self._recent_creates: TTLCache[str, DuplicateCreate] = TTLCache(1024, DUPLICATE_WINDOW_S)
        self._directory_lock = anyio.Lock()
        self._page_locks: dict[tuple[str, str, str | None], anyio.Lock] = {}

    # -- upstream pages ------------------------------------------------------

    async def _page(self, filters: Mapping[str, str], mode: str, anchor: str | None) -> Page[Invoice]:
        key = (json.dumps(filters, sort_keys=True), mode, anchor)
        hit = self._pages.get(key)
        if hit is not None:
            return hit
        # Single flight per page: a burst of identical list calls costs one upstream request, not one each.
        lock = self._page_locks.setdefault(key, anyio.Lock())
        try:
            async with lock:
                hit = self._pages.get(key)
                if hit is not None:
                    return hit
                if mode == "F":
                    page = await self.client.list_invoices(limit=PAGE_SIZE, after=anchor, **filters)
                else:
                    page = await self.client.list_invoices(limit=PAGE_SIZE, before=anchor, **filters)
                self._pages[key] = page
                return page
        finally:
            if not lock.locked() and self._page_locks.get(key) is lock:
                del self._page_locks[key]

    def forget_pages(self) -> None:
        """After a write, cached pages may be stale."""
        self._pages.clear()

    async def _read_forward(self, filters: Mapping[str, str], gap: Gap, n: int) -> tuple[list[Invoice], Gap, bool]:
        rows: list[Invoice] = []
        mode, anchor, off = gap.mode, gap.anchor, gap.offset
        while True:
            page = await self._page(filters, mode, anchor)
            data = page.data
            start = off if mode == "F" else max(0, len(data) - off)
            take = data[start : start + n - len(rows)]
            rows.extend(take)
            pos = start + len(take)
            if pos < len(data):
                end = Gap("F", anchor, pos) if mode == "F" else Gap("B", anchor, len(data) - pos)
                return rows, end, True
            if mode == "B":
                if not page.end_cursor:
                    return rows, Gap("F", None, 0), False
                mode, anchor, off = "F", page.end_cursor, 0
                if len(rows) >= n:
                    return rows, Gap("F", anchor, 0), True
                continue
            if not page.has_next_page or not page.end_cursor or not data:
                return rows, Gap("F", anchor, pos), False
            mode, anchor, off = "F", page.end_cursor, 0
            if len(rows) >= n:
                return rows, Gap("F", anchor, 0), True

    async def _step_back(self, filters: Mapping[str, str], gap: Gap, n: int) -> Gap:
        """The gap `n` rows before `gap` (clamped at the start of the list)."""
        start = Gap("F", None, 0)
        if gap.mode == "F":
            if gap.offset >= n:
                return Gap("F", gap.anchor, gap.offset - n)
            if gap.anchor is None:
                return start
            page = await self._page(filters, "F", gap.anchor)
            if not page.start_cursor or not page.data:
                return start
            need, anchor = n - gap.offset, page.start_cursor
        else:
            need, anchor = gap.offset + n, gap.anchor or ""
        while anchor:
            q = await self._page(filters, "B", anchor)
            if need < len(q.data) or (need == len(q.data) and q.has_previous_page):
                return Gap("B", anchor, need)
            if not q.has_previous_page or not q.start_cursor or not q.data:
                return start
            need -= len(q.data)
            anchor = q.start_cursor
        return start

    async def list_chunk(self, filters: dict[str, str], limit: int, cursor: str | None) -> Chunk:
        backwards = False
        gap = Gap("F", None, 0)
        if cursor:
            try:
                gap, filters, backwards = self.cursors.decode(cursor, filters)
            except CursorError as exc:
                raise InvalidRequestError(str(exc), validation_errors={"cursor": "invalid"}) from None
        if backwards:
            gap = await self._step_back(filters, gap, limit)
        rows, end, has_more = await self._read_forward(filters, gap, limit)
        at_start = gap == Gap("F", None, 0)
        next_cursor = self.cursors.encode(end, filters) if has_more else None
        prev_cursor = None if at_start else self.cursors.encode(gap, filters, back=True)
        return Chunk(rows=rows, next_cursor=next_cursor, prev_cursor=prev_cursor, has_more=has_more)

    # -- invoices by id or number -------------------------------------------

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
            raise NotFoundError(f"no invoice numbered {ref}", status=404)
        return await self.client.get_invoice(ref)

    async def invoice_id(self, ref: str) -> tuple[str, Invoice | None]:
        """The id for `ref`, resolving a number with one request; the id itself costs nothing."""
        if looks_like_number(ref.strip()):
            inv = await self.resolve_invoice(ref)
            if not inv.id:
                raise NotFoundError(f"no invoice numbered {ref}", status=404)
            return inv.id, inv
        return ref.strip(), None

    # -- customers -----------------------------------------------------------

    async def customer_directory(self) -> list[Customer]:
        hit = self._directory.get("all")
        if hit is not None:
            return hit
        async with self._directory_lock:  # single flight: concurrent cold calls fetch it once
            hit = self._directory.get("all")
            if hit is not None:
                return hit
            return await self._load_directory()

    async def _load_directory(self) -> list[Customer]:
        customers: list[Customer] = []
        after: str | None = None
        for _ in range(MAX_CUSTOMER_PAGES):
            page = await self.client.list_customers(after=after)
            customers.extend(page.data)
            if not page.has_next_page or not page.end_cursor or not page.data:
                break
            after = page.end_cursor
        for c in customers:
            if c.id and c.name:
                self._names[c.id] = c.name
        self._directory["all"] = customers
        return customers

    async def customer_names(self, ids: set[str]) -> dict[str, str]:
        """Names for labelling rows: one directory fetch serves a whole chunk."""
        missing = {i for i in ids if i not in self._names}
        if missing:
            await self.customer_directory()
        return {i: self._names[i] for i in ids if i in self._names}

    async def customer_name(self, customer_id: str | None) -> str | None:
        if not customer_id:
            return None
        names = await self.customer_names({customer_id})
        if customer_id in names:
            return names[customer_id]
        try:
            c = await self.client.get_customer(customer_id)
        except NotFoundError:
            return None
        if c.name:
            self._names[customer_id] = c.name
        return c.name

    async def find_customers(self, name: str) -> list[Customer]:
        """The API's `company_name` matching rules are unknown: take what it returns,
        then keep case-insensitive substring matches; fall back to the directory."""
        needle = name.casefold().strip()
        found: dict[str, Customer] = {}
        page = await self.client.list_customers(company_name=name)
        for c in page.data:
            if c.id and needle in (c.name or "").casefold():
                found[c.id] = c
        if not found:
            for c in await self.customer_directory():
                if c.id and needle in (c.name or "").casefold():
                    found[c.id] = c
        for c in found.values():
            if c.id and c.name:
                self._names[c.id] = c.name
        return sorted(found.values(), key=lambda c: (c.name or "").casefold())

    async def resolve_customer(self, name: str) -> Customer:
        matches = await self.find_customers(name)
        exact = [c for c in matches if (c.name or "").casefold() == name.casefold().strip()]
        if len(exact) == 1:
            return exact[0]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(
                f"no customer matches {name!r}; try a shorter part of the name with find_customers",
                status=404,
            )
        raise AmbiguousCustomerError(name, exact or matches)

    # -- summaries -------------------------------------------------------------

    async def summarize(
        self,
        filters: dict[str, str],
        *,
        as_of: date,
        max_invoices: int,
        progress: Progress | None = None,
    ) -> Summary:
        """A streaming fold: memory stays flat however many invoices match."""
        s = Summary()
        after: str | None = None
        while True:
            page = await self.client.list_invoices(limit=PAGE_SIZE, after=after, **filters)
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
                s.by_status.setdefault(status, Bucket()).add(total)
                if is_unpaid(status):
                    s.unpaid.add(total)
                    s.unpaid_by_customer.setdefault(inv.customer_id or "?", Bucket()).add(total)
                    bucket = aging_bucket(inv.due_date, as_of)
                    if bucket is None:
                        s.undated_unpaid += 1
                    else:
                        s.aging[bucket].add(total)
            if progress is not None:
                await progress(s.count, f"{s.count} invoices read")
            if s.truncated:
                break
            if not page.has_next_page or not page.end_cursor or not page.data:
                break
            if s.count >= max_invoices:
                s.truncated = True
                break
            after = page.end_cursor
        for b in s.by_status.values():
            b.total = q2(b.total)
        return s

    # -- writes -----------------------------------------------------------------

    def recent_duplicate(self, new: NewInvoice) -> DuplicateCreate | None:
        return self._recent_creates.get(_fingerprint(new))

    async def create(self, new: NewInvoice) -> Invoice:
        inv = await self.client.create_invoice(new)
        self.forget_pages()
        if inv.id:
            self._recent_creates[_fingerprint(new)] = DuplicateCreate(inv.id, inv.invoice_number)
        return inv

    async def archive(self, invoice_id: str) -> Invoice:
        inv = await self.client.archive_invoice(invoice_id)
        self.forget_pages()
        return inv

    async def restore(self, invoice_id: str) -> Invoice:
        inv = await self.client.restore_invoice(invoice_id)
        self.forget_pages()
        return inv

    async def payment_link(self, invoice_id: str) -> Link:
        return await self.client.get_payment_link(invoice_id)

    async def pdf_link(self, invoice_id: str) -> Link:
        return await self.client.get_pdf_link(invoice_id)
