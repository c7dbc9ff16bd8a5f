"""Compact in-memory records for the sandbox's invoices, customers and payments.

Records are slotted objects with integer timestamps and cents rather than ready-made JSON dicts,
so that 100k invoices stay small in memory. The API's JSON shape is built only when an object
is actually served (``to_json``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

KNOWN_STATUSES: frozenset[str] = frozenset({"open", "paid", "overdue", "partially_paid", "draft", "archived"})
PAYMENT_STATUSES: frozenset[str] = frozenset({"succeeded", "pending", "failed", "refunded", "chargeback"})
"""The reference leaves the enum uncaptured; these follow the ``payment_*`` webhook topics."""
PAYMENT_TYPES: frozenset[str] = frozenset({"autopay", "one_time"})
"""Sandbox assumption (values uncaptured): charged automatically on the customer's default
payment method, or paid once by the customer (payment link)."""
PAYMENT_METHODS: frozenset[str] = frozenset({"card", "ach"})
FEE_TYPES: tuple[str, ...] = ("FT_LATE_PAYMENT", "FT_PRODUCT", "FT_METHOD", "FT_INTEREST")
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

LineItem = tuple[str, float, int]
"""(description, amount as served in JSON, quantity). ``amount`` is the unit price in dollars."""
Fee = tuple[str, str, int, bool]
"""(name, type, cents, covered_by_customer)."""


def rfc3339(ts: float) -> str:
    """Format epoch seconds as the API's RFC3339 UTC form, e.g. ``2026-11-25T14:03:22Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def day_to_date(day: int) -> dt.date:
    """Days since the Unix epoch -> date."""
    return dt.date.fromordinal(_EPOCH_ORDINAL + day)


def date_to_day(d: dt.date) -> int:
    """Date -> days since the Unix epoch (so ``day * 86400`` is that date at 00:00:00Z)."""
    return d.toordinal() - _EPOCH_ORDINAL


def cents_to_json(cents: int) -> float:
    """Integer cents -> JSON number in dollars; ``int / 100`` is correctly rounded, so 9999 -> 99.99."""
    return cents / 100


@dataclass(slots=True)
class InvoiceRec:
    """One invoice. ``(created_ts, id)`` is its keyset position; list order is that key descending."""

    id: str
    number: int
    customer_id: str
    created_ts: int
    due_day: int
    status: str
    lines: tuple[LineItem, ...]
    total_cents: int
    memo: str | None = None
    last_notified_ts: int | None = None
    extra: dict[str, Any] | None = None
    prev_status: str | None = None
    exclude_from_autopay: bool | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.created_ts, self.id)

    @property
    def invoice_number(self) -> str:
        return f"INV-{self.number}"

    def to_json(self) -> dict[str, Any]:
        """A fresh JSON object (never shared with the store), optional keys omitted when unset."""
        total = cents_to_json(self.total_cents)
        out: dict[str, Any] = {
            "id": self.id,
            "invoice_number": self.invoice_number,
            "customer_id": self.customer_id,
            "status": self.status,
            "currency": "USD",
            "created_at": rfc3339(self.created_ts),
            "due_date": day_to_date(self.due_day).isoformat(),
        }
        if self.last_notified_ts is not None:
            out["last_notification_at"] = rfc3339(self.last_notified_ts)
        out["line_items"] = [{"description": d, "amount": a, "quantity": q} for d, a, q in self.lines]
        if self.memo is not None:
            out["memo"] = self.memo
        out["sub_total"] = total
        out["total"] = total
        if self.exclude_from_autopay is not None:
            out["exclude_from_autopay"] = self.exclude_from_autopay
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(slots=True)
class CustomerRec:
    """One customer (``CustomerReply``); nullable fields are served as JSON null."""

    id: str
    name: str
    created_ts: int
    legal_name: str | None
    email: str | None
    external_id: str | None
    customer_integration_id: str | None
    default_payment_method_id: str | None
    ein: str | None
    street_address: str | None
    sub_premise: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None

    @property
    def key(self) -> tuple[int, str]:
        return (self.created_ts, self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "legal_name": self.legal_name,
            "email": self.email,
            "external_id": self.external_id,
            "customer_integration_id": self.customer_integration_id,
            "default_payment_method_id": self.default_payment_method_id,
            "ein": self.ein,
            "street_address": self.street_address,
            "sub_premise": self.sub_premise,
            "city": self.city,
            "state": self.state,
            "postal_code": self.postal_code,
            "country": self.country,
            "created_at": rfc3339(self.created_ts),
        }


@dataclass(slots=True)
class PaymentRec:
    """One payment (``Payment``). ``invoice_id`` is internal: the API only filters by it.

    ``sub_total`` is the amount applied to the invoice; ``total`` is what the payer was charged,
    i.e. ``sub_total`` plus the fees the customer covered (fees the partner absorbs do not change it).
    """

    id: str
    customer_id: str
    invoice_id: str | None
    created_ts: int
    due_day: int
    status: str
    type: str
    payment_method: str
    sub_total_cents: int
    fees: tuple[Fee, ...] = ()

    @property
    def key(self) -> tuple[int, str]:
        return (self.created_ts, self.id)

    @property
    def total_cents(self) -> int:
        return self.sub_total_cents + sum(cents for _, _, cents, covered in self.fees if covered)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "status": self.status,
            "payment_method": self.payment_method,
            "created_at": rfc3339(self.created_ts),
            "due_date": day_to_date(self.due_day).isoformat(),
            "sub_total": cents_to_json(self.sub_total_cents),
            "total": cents_to_json(self.total_cents),
            "fees": [
                {"amount": cents_to_json(cents), "covered_by_customer": covered, "name": name, "type": kind}
                for name, kind, cents, covered in self.fees
            ],
        }
