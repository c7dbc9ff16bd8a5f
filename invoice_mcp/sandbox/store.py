"""Sandbox state of one tenant: customers, invoices and payments with the sorted indexes that paging needs.

Each collection keeps an ascending ``(created_ts, id)`` key list with a parallel record list
(globally and per customer), so list queries bisect to a cursor and creates insert in place.
All access goes through one lock because the oracle methods run on the test thread while the
server mutates state on its event-loop thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import random
import secrets
import threading
from bisect import bisect_left
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote

from .config import Clock
from .data import COMPANY_NAMES, FIRST_INVOICE_NUMBER, generate, generate_payments, random_id, seeded_statuses
from .paging import Key, Page, keyset_page
from .records import CustomerRec, InvoiceRec, LineItem, PaymentRec, date_to_day, rfc3339

PAYMENT_LINK_HOST = "pay.sandbox-brand.example"
PDF_HOST = "files.sandbox.example"
PDF_LINK_TTL_S = 900


@dataclass
class PageQuery:
    """What every list takes: a page (its size and a cursor) and a created_at window
    (datetimes already converted to epoch seconds)."""

    limit: int = 100
    after: Key | None = None
    before: Key | None = None
    created_start: float | None = None
    created_end: float | None = None


@dataclass
class InvoiceQuery(PageQuery):
    """Validated ``GET /invoices`` filters."""

    due_start: float | None = None
    due_end: float | None = None
    customer_id: str | None = None
    invoice_number: str | None = None
    status: str | None = None


@dataclass
class CustomerQuery(PageQuery):
    company_name: str | None = None


@dataclass
class PaymentQuery(PageQuery):
    """Validated ``GET /payments`` filters."""

    customer_id: str | None = None
    invoice_id: str | None = None
    status: str | None = None
    type: str | None = None
    payment_method: str | None = None


@dataclass
class NewLine:
    description: str
    amount: float
    quantity: int


class _Index:
    """Ascending key list + parallel item list."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.items: list[Any] = []

    def append(self, key: Key, item: Any) -> None:
        self.keys.append(key)
        self.items.append(item)

    def insert(self, key: Key, item: Any) -> None:
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.items.insert(i, item)


def _window(start: float | None, end: float | None) -> tuple[Key | None, Key | None]:
    """Inclusive created_at bounds -> bisect keys over integer-second timestamps."""
    lo = None if start is None else (math.ceil(start), "")
    hi = None if end is None else (math.floor(end) + 1, "")
    return lo, hi


class Store:
    def __init__(
        self,
        *,
        seed: int,
        customers: int,
        invoices: int,
        clock: Clock,
        names: tuple[str, ...] = COMPANY_NAMES,
        first_number: int = FIRST_INVOICE_NUMBER,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        today = clock.today()
        custs, invs = generate(seed, customers, invoices, today, names=names, first_number=first_number)
        self._rng = random.Random(f"{seed}/runtime")  # ids of API-created invoices, reproducibly
        self._link_key = secrets.token_bytes(32)
        self._payment_tokens: dict[str, str] = {}
        self.customers_by_id: dict[str, CustomerRec] = {}
        self._customers = _Index()
        for c in sorted(custs, key=lambda c: c.key):
            self.customers_by_id[c.id] = c
            self._customers.append(c.key, c)
        self.invoices_by_id: dict[str, InvoiceRec] = {}
        self._by_number: dict[int, InvoiceRec] = {}
        self._all = _Index()
        self._by_customer: dict[str, _Index] = {c.id: _Index() for c in custs}
        for inv in invs:  # already ascending
            self._add(inv, append=True)
        self._next_number = (invs[-1].number + 1) if invs else first_number
        self._payments_by_id: dict[str, PaymentRec] = {}
        self._payments = _Index()
        self._payments_by_customer: dict[str, _Index] = {}
        self._payments_by_invoice: dict[str, _Index] = {}
        # Payments are generated on first use (a 100k-invoice sandbox that never serves them
        # skips the cost), from what the seeded data was at construction.
        self._pending_payments: tuple[int, list[CustomerRec], list[InvoiceRec], list[str], dt.date] | None = (
            seed,
            custs,
            invs,
            seeded_statuses(invs),
            today,
        )

    @property
    def payments_by_id(self) -> dict[str, PaymentRec]:
        """Payment records by id (generated on first use); mutate them only under ``lock``."""
        with self.lock:
            self._load_payments()
            return self._payments_by_id

    def _load_payments(self) -> None:
        """Generate the seeded payments if not done yet (call with the lock held)."""
        if self._pending_payments is None:
            return
        pays = generate_payments(*self._pending_payments)
        self._pending_payments = None
        for pay in pays:  # already ascending
            self._payments_by_id[pay.id] = pay
            key = pay.key
            self._payments.append(key, pay)
            self._payments_by_customer.setdefault(pay.customer_id, _Index()).append(key, pay)
            if pay.invoice_id is not None:
                self._payments_by_invoice.setdefault(pay.invoice_id, _Index()).append(key, pay)

    def _add(self, inv: InvoiceRec, *, append: bool) -> None:
        self.invoices_by_id[inv.id] = inv
        self._by_number[inv.number] = inv
        key = inv.key  # one tuple shared by both indexes
        for index in (self._all, self._by_customer.setdefault(inv.customer_id, _Index())):
            (index.append if append else index.insert)(key, inv)

    # -- queries ---------------------------------------------------------------------------

    def list_invoices(self, q: InvoiceQuery) -> Page[InvoiceRec]:
        with self.lock:
            if q.invoice_number is not None:
                digits = q.invoice_number.removeprefix("INV-")
                one = self._by_number.get(int(digits)) if digits.isdigit() else None
                if one is not None and one.invoice_number != q.invoice_number:
                    one = None
                keys: list[Key] = [one.key] if one else []
                items: list[Any] = [one] if one else []
            elif q.customer_id is not None:
                index = self._by_customer.get(q.customer_id, _Index())
                keys, items = index.keys, index.items
            else:
                keys, items = self._all.keys, self._all.items
            lo, hi = _window(q.created_start, q.created_end)
            status, customer = q.status, q.customer_id
            due_lo, due_hi = q.due_start, q.due_end

            def match(inv: InvoiceRec) -> bool:
                if status is None:
                    if inv.status == "archived":
                        return False
                elif inv.status != status:
                    return False
                if customer is not None and inv.customer_id != customer:
                    return False
                if due_lo is not None or due_hi is not None:
                    due = inv.due_day * 86400
                    if (due_lo is not None and due < due_lo) or (due_hi is not None and due > due_hi):
                        return False
                return True

            return keyset_page(
                keys, items, match=match, limit=q.limit, after=q.after, before=q.before, lo_key=lo, hi_key=hi
            )

    def list_customers(self, q: CustomerQuery) -> Page[CustomerRec]:
        with self.lock:
            needle = q.company_name.casefold() if q.company_name else None

            def match(c: CustomerRec) -> bool:
                return needle is None or needle in c.name.casefold()

            lo, hi = _window(q.created_start, q.created_end)
            return keyset_page(
                self._customers.keys,
                self._customers.items,
                match=match,
                limit=q.limit,
                after=q.after,
                before=q.before,
                lo_key=lo,
                hi_key=hi,
            )

    def list_payments(self, q: PaymentQuery) -> Page[PaymentRec]:
        """Payments newest first. Archiving never hides a payment, and an invoice's payments stay
        listable by ``invoice_id`` whatever the invoice's status."""
        with self.lock:
            self._load_payments()
            empty = _Index()
            if q.invoice_id is not None:
                index = self._payments_by_invoice.get(q.invoice_id, empty)
            elif q.customer_id is not None:
                index = self._payments_by_customer.get(q.customer_id, empty)
            else:
                index = self._payments
            status, kind, method, customer = q.status, q.type, q.payment_method, q.customer_id

            def match(p: PaymentRec) -> bool:
                return (
                    (status is None or p.status == status)
                    and (kind is None or p.type == kind)
                    and (method is None or p.payment_method == method)
                    and (customer is None or p.customer_id == customer)
                )

            lo, hi = _window(q.created_start, q.created_end)
            return keyset_page(
                index.keys,
                index.items,
                match=match,
                limit=q.limit,
                after=q.after,
                before=q.before,
                lo_key=lo,
                hi_key=hi,
            )

    def payment_json(self, payment_id: str) -> dict[str, Any] | None:
        with self.lock:
            pay = self.payments_by_id.get(payment_id)
            return pay.to_json() if pay else None

    def all_payments_json(self) -> list[dict[str, Any]]:
        with self.lock:
            self._load_payments()
            return [p.to_json() for p in reversed(self._payments.items)]

    def payments_by_invoice_json(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            self._load_payments()
            return {
                invoice_id: [p.to_json() for p in reversed(index.items)]
                for invoice_id, index in self._payments_by_invoice.items()
            }

    def invoice_json(self, invoice_id: str) -> dict[str, Any] | None:
        with self.lock:
            inv = self.invoices_by_id.get(invoice_id)
            return inv.to_json() if inv else None

    def customer_json(self, customer_id: str) -> dict[str, Any] | None:
        with self.lock:
            c = self.customers_by_id.get(customer_id)
            return c.to_json() if c else None

    def all_invoices_json(self, include_archived: bool) -> list[dict[str, Any]]:
        with self.lock:
            return [inv.to_json() for inv in reversed(self._all.items) if include_archived or inv.status != "archived"]

    def all_customers_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [c.to_json() for c in reversed(self._customers.items)]

    # -- mutations ---------------------------------------------------------------------------

    def create_invoice(
        self,
        *,
        customer_id: str,
        lines: list[NewLine],
        due_date: dt.date | None,
        memo: str | None,
        exclude_from_autopay: bool,
    ) -> dict[str, Any]:
        """Create an ``open`` invoice; totals are Σ amount × quantity rounded half-up to cents."""
        total = sum((Decimal(repr(ln.amount)) * ln.quantity for ln in lines), Decimal(0))
        cents = int((total * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        with self.lock:
            now = self.clock.now()
            inv_id = random_id(self._rng, "inv_", 24)
            while inv_id in self.invoices_by_id:  # pragma: no cover
                inv_id = random_id(self._rng, "inv_", 24)
            stored: tuple[LineItem, ...] = tuple((ln.description, ln.amount, ln.quantity) for ln in lines)
            inv = InvoiceRec(
                id=inv_id,
                number=self._next_number,
                customer_id=customer_id,
                created_ts=int(now),
                due_day=date_to_day(due_date or dt.datetime.fromtimestamp(now, dt.UTC).date()),
                status="open",
                lines=stored,
                total_cents=cents,
                memo=memo,
                exclude_from_autopay=exclude_from_autopay,
            )
            self._next_number += 1
            self._add(inv, append=False)
            return inv.to_json()

    def archive(self, invoice_id: str) -> dict[str, Any] | None:
        with self.lock:
            inv = self.invoices_by_id.get(invoice_id)
            if inv is None:
                return None
            if inv.status != "archived":
                inv.prev_status, inv.status = inv.status, "archived"
            return inv.to_json()

    def restore(self, invoice_id: str) -> dict[str, Any] | None:
        with self.lock:
            inv = self.invoices_by_id.get(invoice_id)
            if inv is None:
                return None
            if inv.status == "archived":
                inv.status, inv.prev_status = inv.prev_status or "open", None
            return inv.to_json()

    def invoice_status(self, invoice_id: str) -> str | None:
        with self.lock:
            inv = self.invoices_by_id.get(invoice_id)
            return inv.status if inv else None

    def payment_link(self, invoice_id: str) -> str:
        """Stable per invoice for the sandbox's lifetime; scheme-less like the real API."""
        with self.lock:
            token = self._payment_tokens.get(invoice_id)
            if token is None:
                token = self._payment_tokens[invoice_id] = secrets.token_urlsafe(18)
            return f"{PAYMENT_LINK_HOST}/p/{token}"

    def pdf_link(self, invoice_id: str) -> dict[str, Any]:
        expires = int(self.clock.now()) + PDF_LINK_TTL_S
        sig = hmac.new(self._link_key, f"{invoice_id}:{expires}".encode(), hashlib.sha256).hexdigest()
        url = f"https://{PDF_HOST}/invoices/{quote(invoice_id, safe='')}.pdf?expires={expires}&signature={sig}"
        return {"url": url, "expires_at": rfc3339(expires)}
