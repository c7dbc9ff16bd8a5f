"""Wire models of the Alternative Payments API, tolerant of its evolution.

Every field is optional and unknown fields are ignored (new fields ship without a
version bump). `status` is an open string. Money is `Decimal`: the API speaks
dollars as JSON numbers, and sums must not drift.

Tolerant of bad rows too: one invoice whose `total` is NaN,
Infinity, 1e26 or not a number at all must not fail the page it is on. Such an
amount becomes None and its field name is listed in `invalid_amounts`, so the
row is kept and can be reported; a page row that is not an object at all is
skipped and counted in `Page.skipped_rows`. A text field sent as a number
becomes its string; one sent as an object, list or boolean becomes None.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
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


MAX_AMOUNT: Final = Decimal("1e15")
"""Largest plausible amount (a quadrillion dollars). Beyond it, cent arithmetic in the default
28-digit decimal context stops being exact, so such a value is treated as invalid data."""

MAX_QUANTITY: Final = 10**12


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _tidy_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # A text field sent as an object, list or boolean becomes None instead of failing the row.
            bad = [
                k
                for k, f in cls.model_fields.items()
                if f.annotation == (str | None) and isinstance(data.get(k), dict | list | bool)
            ]
            if bad:
                data = {**data, **dict.fromkeys(bad)}
        return _tidy(data)


def amount_or_none(raw: object) -> Decimal | None:
    """A finite, plausible amount as Decimal, else None (bools, NaN, ±Infinity, 1e26, text...)."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    if not isinstance(raw, int | float | str | Decimal):
        return None
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else str(raw))
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or abs(value) >= MAX_AMOUNT:
        return None
    return value


def _sanitize_amounts(data: Any, amounts: tuple[str, ...], ints: tuple[str, ...] = ()) -> Any:
    """Before validation: replace unusable amounts with None and list them in `invalid_amounts`."""
    if not isinstance(data, dict):
        return data
    bad: list[str] = []
    out = dict(data)
    for key in amounts:
        raw = out.get(key)
        if raw is not None and amount_or_none(raw) is None:
            out[key] = None
            bad.append(key)
    for key in ints:
        raw = out.get(key)
        if raw is None:
            continue
        ok = isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) <= MAX_QUANTITY
        if not ok:
            out[key] = None
            bad.append(key)
    out["invalid_amounts"] = bad
    return out


class InvoiceStatus:
    """The status values the code branches on. The API's set is open (draft, open, paid,
    partially_paid, overdue, archived, and any it adds later); values are passed through untouched."""

    ARCHIVED: Final = "archived"


class LineItem(_Wire):
    description: str | None = None
    amount: Decimal | None = None
    quantity: int | None = None
    invalid_amounts: list[str] = Field(default_factory=list)
    """Fields the API sent as unusable numbers (now None)."""

    @model_validator(mode="before")
    @classmethod
    def _amounts(cls, data: Any) -> Any:
        return _sanitize_amounts(data, ("amount",), ("quantity",))


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
    invalid_amounts: list[str] = Field(default_factory=list)
    """Fields the API sent as unusable numbers (NaN, Infinity, ≥ 1e15, text); they are None.
    `line_items` is listed when a line item has one."""

    @model_validator(mode="before")
    @classmethod
    def _amounts(cls, data: Any) -> Any:
        data = _sanitize_amounts(data, ("total", "sub_total"))
        if isinstance(data, dict) and not isinstance(data.get("line_items"), list | None):
            data["line_items"] = None
            data["invalid_amounts"].append("line_items")
        elif isinstance(data, dict) and isinstance(data.get("line_items"), list):
            rows = [li for li in data["line_items"] if isinstance(li, dict | BaseModel)]
            if len(rows) != len(data["line_items"]):
                data["invalid_amounts"].append("line_items")
            data["line_items"] = rows
        return data

    @property
    def has_invalid_amounts(self) -> bool:
        return bool(self.invalid_amounts) or any(li.invalid_amounts for li in self.line_items or ())


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
    skipped_rows: int = 0
    """Rows of `data` that were not objects at all (dropped, so the rest of the page is served)."""

    @model_validator(mode="before")
    @classmethod
    def _rows(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            rows = data["data"]
            kept = [r for r in rows if isinstance(r, dict | BaseModel)]
            if len(kept) != len(rows):
                data = {**data, "data": kept, "skipped_rows": len(rows) - len(kept)}
        return data


class ErrorBody(_Wire):
    """An error reply. Whatever shapes the fields take, parsing never fails on them:
    `validation_errors` may be a field→message map, a list, or nested, and becomes a flat map."""

    code: str | None = None
    message: str | None = None
    validation_errors: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _loose(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return {}
        out: dict[str, Any] = {}
        for key in ("code", "message"):
            v = data.get(key)
            out[key] = v if isinstance(v, str) else (None if v is None else str(v)[:1000])
        ve = data.get("validation_errors")
        if isinstance(ve, dict):
            out["validation_errors"] = {str(k)[:200]: _flatten(v) for k, v in list(ve.items())[:50]}
        elif isinstance(ve, list):
            out["validation_errors"] = {str(i): _flatten(v) for i, v in enumerate(ve[:50])}
        elif ve is not None:
            out["validation_errors"] = {"request": _flatten(ve)}
        return out


def _flatten(value: object) -> str:
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, list):
        return "; ".join(_flatten(v) for v in value[:10])[:1000]
    return str(value)[:1000]


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
    invalid_amounts: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _amounts(cls, data: Any) -> Any:
        data = _sanitize_amounts(data, ("amount",))
        if isinstance(data, dict) and not isinstance(data.get("covered_by_customer"), bool | None):
            data["covered_by_customer"] = None
        return data


class Payment(_Wire):
    """A payment (``/payments``). It carries no invoice id: that link exists only as a filter."""

    @model_validator(mode="before")
    @classmethod
    def _tidy_method(cls, data: Any) -> Any:
        """`payment_method` is API text too (TEXT_LIMITS covers the fields shared with invoices)."""
        if isinstance(data, dict) and isinstance(data.get("payment_method"), str):
            data = {**data, "payment_method": clean(data["payment_method"].replace("«", '"').replace("»", '"'), 40)}
        return data

    @model_validator(mode="before")
    @classmethod
    def _amounts(cls, data: Any) -> Any:
        """One payment with a NaN, text, boolean, object or absurd amount must not fail its page (and
        with it every answer that reads the account's payments): the amount becomes None and is
        listed in `invalid_amounts`, so the record is kept, not counted, and named."""
        data = _sanitize_amounts(data, ("sub_total", "total"))
        if not isinstance(data, dict):
            return data
        fees = data.get("fees")
        if fees is not None and not isinstance(fees, list):
            data["fees"] = None
            data["invalid_amounts"].append("fees")
        elif isinstance(fees, list):
            rows = [f for f in fees[:50] if isinstance(f, dict | BaseModel)]
            if len(rows) != len(fees):
                data["invalid_amounts"].append("fees")
            data["fees"] = rows
        if isinstance(data.get("status"), dict | list | bool):
            data["status"] = None
            data["invalid_amounts"].append("status")
        return data

    id: str | None = None
    customer_id: str | None = None
    due_date: str | None = None
    created_at: str | None = None
    payment_method: str | None = None
    status: str | None = None
    currency: str | None = None
    """Not in the documented schema; read when the API sends it, so money never crosses currencies."""
    sub_total: Decimal | None = None
    total: Decimal | None = None
    fees: list[PaymentFee] | None = None
    invalid_amounts: list[str] = Field(default_factory=list)
    """Fields the API sent as unusable values (now None): amounts, fees, a status that is not text."""

    @property
    def applied(self) -> Decimal | None:
        """The amount applied to the invoice: ``sub_total`` (``total`` also holds the fees the
        customer covered), else ``total`` when that is all the API sent. None when the API sent a
        ``sub_total`` it could not use (the fee-inclusive total is no stand-in for it)."""
        if "sub_total" in self.invalid_amounts:
            return None
        return self.sub_total if self.sub_total is not None else self.total
