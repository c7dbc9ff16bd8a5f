"""Wire models of the Alternative Payments API, tolerant of its evolution.

Every field is optional and unknown fields are ignored (new fields ship without a
version bump). `status` is an open string. Money is `Decimal`: the API speaks
dollars as JSON numbers, and sums must not drift.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from invoice_mcp.text import clean

PAGE_SIZE: Final = 100
"""Invoices per upstream request: the API's default page, and the most it is known to serve."""


TEXT_LIMITS: Final = {
    **dict.fromkeys(("memo", "description", "message"), 5000),
    **dict.fromkeys(("name", "legal_name", "email", "external_id", "city", "state", "country"), 300),
    **dict.fromkeys(("id", "invoice_number", "customer_id", "code"), 128),
    **dict.fromkeys(("currency", "status", "due_date", "created_at", "last_notification_at", "expires_at"), 40),
}
"""Every text field the API sends is hostile: cleaned (no control, bidi or invisible characters,
one line) and bounded here, once. Links and cursors are not text: they stay exact (links are
checked where used, service/invoices.py; cursors go back to the API as they came)."""


def _tidy(data: Any) -> Any:
    if isinstance(data, dict):
        data = dict(data)
        for key, limit in TEXT_LIMITS.items():
            if isinstance(data.get(key), str):  # «» is ours: it marks where API text starts and ends
                data[key] = clean(data[key].replace("«", '"').replace("»", '"'), limit) or None
        errors = data.get("validation_errors")
        if isinstance(errors, dict):
            data["validation_errors"] = {clean(str(k), 60): clean(str(v), 300) for k, v in list(errors.items())[:20]}
    return data


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _tidy_text(cls, data: Any) -> Any:
        return _tidy(data)


class InvoiceStatus:
    """The status values the code branches on. The API's set is open (draft, open, paid,
    partially_paid, overdue, archived, and any it adds later); values are passed through untouched."""

    ARCHIVED: Final = "archived"
    SETTLED: Final = frozenset({"paid", "archived", "draft"})
    """Statuses whose total is not owed (draft is not yet issued)."""


class LineItem(_Wire):
    description: str | None = None
    amount: Decimal | None = None
    quantity: int | None = None


class Invoice(_Wire):
    id: str | None = None
    invoice_number: str | None = None
    customer_id: str | None = None
    currency: str | None = None
    status: str | None = None
    due_date: str | None = None
    created_at: str | None = None
    last_notification_at: str | None = None
    memo: str | None = None
    sub_total: Decimal | None = None
    total: Decimal | None = None
    line_items: list[LineItem] | None = None


class Customer(_Wire):
    id: str | None = None
    name: str | None = None
    legal_name: str | None = None
    email: str | None = None
    external_id: str | None = None
    created_at: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None


T = TypeVar("T", bound=BaseModel)


class Page(_Wire, Generic[T]):
    """The documented envelope: fields at the top level, cursors opaque."""

    data: list[T] = Field(default_factory=list)
    start_cursor: str | None = None
    end_cursor: str | None = None
    has_next_page: bool = False
    has_previous_page: bool = False


class ErrorBody(_Wire):
    code: str | None = None
    message: str | None = None
    validation_errors: dict[str, str] | None = None


class Link(_Wire):
    url: str | None = None
    expires_at: str | None = None


class NewLineItem(BaseModel):
    description: str
    amount: Decimal
    quantity: int


class NewInvoice(BaseModel):
    """Body of POST /invoices."""

    customer_id: str
    currency: str = "USD"
    due_date: str | None = None
    exclude_from_autopay: bool | None = None
    line_items: list[NewLineItem]

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "customer_id": self.customer_id,
            "currency": self.currency,
            "line_items": [
                {"description": li.description, "amount": float(li.amount), "quantity": li.quantity}
                for li in self.line_items
            ],
        }
        if self.due_date is not None:
            body["due_date"] = self.due_date
        if self.exclude_from_autopay is not None:
            body["exclude_from_autopay"] = self.exclude_from_autopay
        return body


class PaymentStatus:
    """Payment status values the docs imply (from the ``payment_*`` webhook topics); the enum
    itself is undocumented, so any other value is passed through and counts as unknown."""

    SUCCEEDED: Final = "succeeded"
    FAILED: Final = "failed"
    PENDING: Final = "pending"
    REFUNDED: Final = "refunded"
    CHARGEBACK: Final = "chargeback"

    KNOWN: Final = ("succeeded", "failed", "pending", "refunded", "chargeback")


class PaymentFee(_Wire):
    amount: Decimal | None = None
    covered_by_customer: bool | None = None
    name: str | None = None
    type: str | None = None


class Payment(_Wire):
    """A payment (``/payments``). It carries no invoice id: that link exists only as a filter."""

    @model_validator(mode="before")
    @classmethod
    def _tidy_method(cls, data: Any) -> Any:
        """`payment_method` is API text too (TEXT_LIMITS covers the fields shared with invoices)."""
        if isinstance(data, dict) and isinstance(data.get("payment_method"), str):
            data = {**data, "payment_method": clean(data["payment_method"].replace("«", '"').replace("»", '"'), 40)}
        return data

    id: str | None = None
    customer_id: str | None = None
    due_date: str | None = None
    created_at: str | None = None
    payment_method: str | None = None
    status: str | None = None
    sub_total: Decimal | None = None
    total: Decimal | None = None
    fees: list[PaymentFee] | None = None

    @property
    def applied(self) -> Decimal | None:
        """The amount applied to the invoice: ``sub_total`` (``total`` also holds the fees the
        customer covered), else ``total`` when that is all the API sent."""
        return self.sub_total if self.sub_total is not None else self.total
