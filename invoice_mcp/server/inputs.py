"""Input pieces shared by several tools: invoice references and list filters."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

if TYPE_CHECKING:
    from invoice_mcp.service import Query

STATUS_EXAMPLES = ["open", "overdue", "paid", "draft", "archived", "void"]
Status = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        description="e.g. " + ", ".join(STATUS_EXAMPLES) + " (open set)",
    ),
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

_ID_RE = re.compile(ID_PATTERN)


def _check_id(value: str) -> str:
    """Ids are one URL path segment: letters, digits and `_ . : -`, no path tricks.
    Checked here rather than as a schema `pattern` (it would cost tokens on every tool)."""
    if not _ID_RE.fullmatch(value) or value.strip(".") == "":
        raise ValueError(f"{value[:40]!r} is not an id or invoice number (letters, digits, _ . : - only)")
    return value


def _check_id_as_sent(value: object) -> object:
    """An id as the client sent it, before models trim strings: whitespace around it is refused."""
    return _check_id(value) if isinstance(value, str) else value


InvoiceRef = Annotated[
    str,
    Field(min_length=1, max_length=128, description="Invoice id, or its number like INV-1042"),
    BeforeValidator(_check_id_as_sent),
    AfterValidator(_check_id),
]
CustomerId = Annotated[
    str, Field(min_length=1, max_length=128), BeforeValidator(_check_id_as_sent), AfterValidator(_check_id)
]
_DATE: JsonDict = {"format": "date"}
DateFrom = Annotated[str, Field(json_schema_extra=_DATE, description="Inclusive, UTC (or RFC3339)")]
DateTo = Annotated[str, Field(json_schema_extra=_DATE, description="Inclusive, whole UTC day (or RFC3339)")]
"""Typed as dates (what a client should send); RFC3339 date-times are accepted too. Checked and
normalised by `to_rfc3339`: a start date means 00:00:00Z, an end date 23:59:59Z."""
API_FILTERS = (
    "status",
    "customer_id",
    "invoice_number",
    "created_at_start",
    "created_at_end",
    "due_date_start",
    "due_date_end",
)
_NUMBER_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


def _check_number(value: str) -> str:
    if not _NUMBER_RE.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not an invoice number like INV-1042")
    return value


_DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ][0-9:.]+([Zz]|[+-]\d{2}:?\d{2})?)?$")


def real_date(v: str | None) -> str | None:
    """A YYYY-MM-DD that exists on the calendar (the pattern alone lets 2026-02-30 through)."""
    if v is not None:
        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a real date (YYYY-MM-DD)") from None
    return v


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _z(dt: datetime) -> str:
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
            return _z(datetime.combine(d, t, tzinfo=UTC))
        dt = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise ValueError(f"{value!r} is not a real date; use YYYY-MM-DD or RFC3339") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return _z(dt.astimezone(UTC))
    except OverflowError:  # 0001-01-01T00:00:00+01:00, 9999-12-31T23:59:59-01:00: outside the calendar in UTC
        raise ValueError(
            f"{value!r} is outside the supported dates once converted to UTC; use 0001-01-02..9999-12-30"
        ) from None


class Filters(Strict):
    status: Status | None = None
    customer: str | None = Field(None, min_length=1, max_length=200, description="Company name (or customer_id)")
    customer_id: CustomerId | None = None
    invoice_number: Annotated[str, AfterValidator(_check_number)] | None = None
    created_at_start: DateFrom | None = None
    created_at_end: DateTo | None = None
    due_date_start: DateFrom | None = None
    due_date_end: DateTo | None = None
    unpaid: bool = Field(False, description="Only invoices still owed")
    min_days_past_due: int | None = Field(None, ge=0, le=3650, description="Unpaid, due ≥ N days before as_of")
    text: str | None = Field(
        None, min_length=1, max_length=100, description="In memo, line items or customer name (any case)"
    )
    failed_payment: bool = Field(False, description="Only invoices with a failed payment attempt")
    as_of: str | None = Field(None, json_schema_extra=_DATE, description="UTC; default today")

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

    @field_validator("as_of")
    @classmethod
    def _as_of(cls, v: str | None) -> str | None:
        return real_date(v)

    @field_validator("created_at_start", "due_date_start")
    @classmethod
    def _start(cls, v: str | None) -> str | None:
        return None if v is None else to_rfc3339(v, end=False)

    @field_validator("created_at_end", "due_date_end")
    @classmethod
    def _end(cls, v: str | None) -> str | None:
        return None if v is None else to_rfc3339(v, end=True)

    @model_validator(mode="after")
    def _consistent(self) -> Filters:
        if self.customer and self.customer_id:
            raise ValueError("give either customer (a name) or customer_id, not both")
        for a, b in (("created_at_start", "created_at_end"), ("due_date_start", "due_date_end")):
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

    def api_filters(self) -> dict[str, str]:
        """The API's own filters (customer names are resolved separately)."""
        return {k: str(getattr(self, k)) for k in API_FILTERS if getattr(self, k) is not None}

    def query(self) -> Query:
        from invoice_mcp.service import LocalFilter, Query

        local = LocalFilter(
            unpaid=self.unpaid,
            min_days_past_due=self.min_days_past_due,
            as_of=date.fromisoformat(self.as_of) if self.as_of else None,
            text=self.text,
            failed_payment=self.failed_payment,
        )
        return Query(filters=self.api_filters(), customer=self.customer, local=local)
