"""The query objects: one frozen model per list, which is at once what a tool accepts (after
validation; its JSON schema is the tool's input schema), what a cursor seals, and what the
service reads.

`InvoiceQuery` holds the API's own invoice filters and the ones the server applies itself
(service/filters.py has their steps); `PaymentQuery` the payment filters. A query starts as the
caller wrote it (a customer *name*, an invoice *number*, maybe no as_of) and is *resolved* by the
service (customer_id, invoice id, as_of set), and the resolved query is what a cursor carries:
signed, so a walk goes on with the very same filters on any replica."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Final, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_ID_RE: Final = re.compile(ID_PATTERN)
STATUS_EXAMPLES: Final = ["open", "overdue", "paid", "draft", "archived", "void"]
_NUMBER_RE: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
_DATE_SHAPE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ][0-9:.]+([Zz]|[+-]\d{2}:?\d{2})?)?$")
_WORD: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")


def check_id(value: str) -> str:
    """Ids are one URL path segment: letters, digits and `_ . : -`, no path tricks.
    Checked here rather than as a schema `pattern` (it would cost tokens on every tool)."""
    if not _ID_RE.fullmatch(value) or value.strip(".") == "":
        raise ValueError(f"{value[:40]!r} is not an id or invoice number (letters, digits, _ . : - only)")
    return value


def _check_number(value: str) -> str:
    if not _NUMBER_RE.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not an invoice number like INV-1042")
    return value


def _word(value: str) -> str:
    """Payment statuses and methods are open enums: any short lowercase word goes to the API."""
    value = value.lower()
    if not _WORD.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a status/method word (e.g. succeeded, failed; card, ach)")
    return value


def real_date(v: str | None) -> str | None:
    """A YYYY-MM-DD that exists on the calendar (the pattern alone lets 2026-02-30 through)."""
    if v is not None:
        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a real date (YYYY-MM-DD)") from None
    return v


def utc_text(dt: datetime) -> str:
    """RFC3339 in UTC with a 4-digit year (strftime's %Y gives "1" for year 1 on glibc)."""
    return dt.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def to_rfc3339(value: str, *, end: bool) -> str:
    """A date means the whole day: start at 00:00:00Z, end at 23:59:59Z."""
    if len(value) > 40 or not _DATE_SHAPE.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a date; use YYYY-MM-DD or RFC3339 like 2026-01-31T00:00:00Z")
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            t = time(23, 59, 59) if end else time(0, 0, 0)
            return utc_text(datetime.combine(d, t, tzinfo=UTC))
        dt = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise ValueError(f"{value!r} is not a real date; use YYYY-MM-DD or RFC3339") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return utc_text(dt.astimezone(UTC))
    except OverflowError:  # 0001-01-01T00:00:00+01:00, 9999-12-31T23:59:59-01:00: outside the calendar in UTC
        raise ValueError(
            f"{value!r} is outside the supported dates once converted to UTC; use 0001-01-02..9999-12-30"
        ) from None


def _start(v: str | None) -> str | None:
    return None if v is None else to_rfc3339(v, end=False)


def _end(v: str | None) -> str | None:
    return None if v is None else to_rfc3339(v, end=True)


Status = Annotated[
    str, Field(min_length=1, max_length=40, description="e.g. " + ", ".join(STATUS_EXAMPLES) + " (open set)")
]


def check_id_as_sent(value: object) -> object:
    """An id as the client sent it, before models trim strings: whitespace around it is refused."""
    return check_id(value) if isinstance(value, str) else value


InvoiceRef = Annotated[
    str,
    Field(min_length=1, max_length=128, description="Invoice id, or its number like INV-1042"),
    BeforeValidator(check_id_as_sent),
    AfterValidator(check_id),
]
CustomerId = Annotated[
    str, Field(min_length=1, max_length=128), BeforeValidator(check_id_as_sent), AfterValidator(check_id)
]
_DATE: JsonDict = {"format": "date"}
DateFrom = Annotated[str, Field(json_schema_extra=_DATE, description="Inclusive, UTC (or RFC3339)")]
DateTo = Annotated[str, Field(json_schema_extra=_DATE, description="Inclusive, whole UTC day (or RFC3339)")]
"""Typed as dates (what a client should send); RFC3339 date-times are accepted too. Checked and
normalised by `to_rfc3339`: a start date means 00:00:00Z, an end date 23:59:59Z."""
Word = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_word)]


class ServerSide:
    """Marks a query field the API cannot apply: the server checks each row for it while it reads
    pages (its step is in service/filters.py). Schema-neutral: it only tags the field."""


SERVER_SIDE: Final = ServerSide()
NOT_FILTERS: Final = frozenset({"customer", "as_of"})
"""Query fields that filter nothing themselves: a name resolved to customer_id, a reference date."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SealedQuery(Strict):
    """A query a cursor can carry: frozen, and sealed as its fields that differ from the defaults."""

    model_config = ConfigDict(frozen=True)
    FIELDS: ClassVar[frozenset[str]] = frozenset()
    """The query's own fields (a tool input adds limit and cursor, which are not part of it)."""

    def sealed(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(self.FIELDS), exclude_defaults=True)

    @classmethod
    def unsealed(cls, fields: dict[str, Any]) -> Self:
        """The query a cursor carried (its signature already checked): ValueError if it is no query of ours."""
        return cls.model_validate(fields)

    @property
    def empty(self) -> bool:
        return not self.sealed()


_PAIRS: Final = (("created_at_start", "created_at_end"), ("due_date_start", "due_date_end"))


class InvoiceQuery(SealedQuery):
    """What to list or summarize. Adding a server-side filter: its field here, and its step in
    service/filters.py (`matcher`); the tool schemas, the cursor and the service follow."""

    status: Status | None = None
    customer: str | None = Field(None, min_length=1, max_length=200, description="Company name (or customer_id)")
    customer_id: CustomerId | None = None
    invoice_number: Annotated[str, AfterValidator(_check_number)] | None = None
    created_at_start: DateFrom | None = None
    created_at_end: DateTo | None = None
    due_date_start: DateFrom | None = None
    due_date_end: DateTo | None = None
    unpaid: Annotated[bool, SERVER_SIDE] = Field(False, description="Only invoices still owed")
    min_days_past_due: Annotated[int | None, SERVER_SIDE] = Field(
        None, ge=0, le=3650, description="Unpaid, due ≥ N days before as_of"
    )
    text: Annotated[str | None, SERVER_SIDE] = Field(
        None, min_length=1, max_length=100, description="In memo, line items or customer name (any case)"
    )
    failed_payment: Annotated[bool, SERVER_SIDE] = Field(
        False, description="Only invoices with a failed payment attempt"
    )
    as_of: str | None = Field(None, json_schema_extra=_DATE, description="UTC; default today")

    check_start_dates = field_validator("created_at_start", "due_date_start")(_start)
    check_end_dates = field_validator("created_at_end", "due_date_end")(_end)
    check_as_of = field_validator("as_of")(real_date)

    @field_validator("status")
    @classmethod
    def _status(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.lower()
        if v in ("unpaid", "owed", "outstanding", "past_due"):
            raise ValueError(f"{v!r} is not an API status; use unpaid=true (or min_days_past_due=N) instead")
        if not re.fullmatch(r"[a-z][a-z_-]*", v):
            raise ValueError(f"{v[:40]!r} is not a status (letters, _ and - only), e.g. open, paid, overdue")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.customer and self.customer_id:
            raise ValueError("give either customer (a name) or customer_id, not both")
        for a, b in _PAIRS:
            lo, hi = getattr(self, a), getattr(self, b)
            if lo and hi and lo > hi:
                raise ValueError(f"{a} is after {b}")
        if self.as_of and self.min_days_past_due:
            try:
                date.fromisoformat(self.as_of) - timedelta(days=self.min_days_past_due)
            except OverflowError:
                raise ValueError(
                    f"as_of {self.as_of} minus min_days_past_due={self.min_days_past_due} days falls before "
                    "0001-01-01, where no invoice can be due; use a later as_of or fewer days"
                ) from None
        return self

    @property
    def as_of_date(self) -> date | None:
        return date.fromisoformat(self.as_of) if self.as_of else None

    @property
    def server_side(self) -> bool:
        """A filter the API cannot apply is set (its rows are checked by the server: service/filters.py)."""
        return any(getattr(self, f) != InvoiceQuery.model_fields[f].default for f in SERVER_SIDE_FIELDS)


InvoiceQuery.FIELDS = frozenset(InvoiceQuery.model_fields)
SERVER_SIDE_FIELDS: Final = tuple(f for f, info in InvoiceQuery.model_fields.items() if SERVER_SIDE in info.metadata)
API_FILTERS: Final = tuple(f for f in InvoiceQuery.model_fields if f not in SERVER_SIDE_FIELDS and f not in NOT_FILTERS)
"""The fields the API applies itself, as query parameters of the same name."""


class PaymentQuery(SealedQuery):
    """The payment filters; `customer` (a name) and `invoice` (an id or number) are resolved to
    customer_id and invoice_id by the service."""

    customer: str | None = Field(None, min_length=1, max_length=200, description="Company name")
    customer_id: CustomerId | None = None
    invoice: InvoiceRef | None = None
    status: Word | None = Field(None, description="succeeded, failed, pending, refunded, chargeback")
    method: Word | None = Field(None, description="card, ach…")
    created_at_start: DateFrom | None = None
    created_at_end: DateTo | None = None

    check_start_dates = field_validator("created_at_start")(_start)
    check_end_dates = field_validator("created_at_end")(_end)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.customer and self.customer_id:
            raise ValueError("give either customer (a name) or customer_id, not both")
        if self.created_at_start and self.created_at_end and self.created_at_start > self.created_at_end:
            raise ValueError("created_at_start is after created_at_end")
        return self

    def api_params(self) -> dict[str, str]:
        """The API's payment filters (once resolved: `invoice` is then the invoice's id)."""
        pairs = {
            "customer_id": self.customer_id,
            "invoice_id": self.invoice,
            "status": self.status,
            "payment_method": self.method,
            "created_at_start": self.created_at_start,
            "created_at_end": self.created_at_end,
        }
        return {k: v for k, v in pairs.items() if v is not None}


PaymentQuery.FIELDS = frozenset(PaymentQuery.model_fields)
