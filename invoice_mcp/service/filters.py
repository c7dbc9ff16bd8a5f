"""Filters the API cannot apply, applied by the server while it reads upstream pages.

`unpaid`, `min_days_past_due` and `text` have no API equivalent (the API filters by one
status, dates, customer and number only). What can be pushed down is: `min_days_past_due`
tightens `due_date_end` (a due date on or before `as_of - N days`). The rest is checked on
each invoice as pages of 100 are read, so one upstream request still covers 100 invoices.

The filter travels inside the signed list cursor (keys starting with `~`, next to the API
filters), so paging through a filtered list stays exact and stateless."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final

from invoice_mcp.service.statuses import is_owed

if TYPE_CHECKING:
    from invoice_mcp.api.models import Invoice

LOCAL_PREFIX: Final = "~"
_UNPAID, _LATE, _AS_OF, _TEXT, _FAILED = "~unpaid", "~late", "~as_of", "~text", "~failed"

Keep = Callable[["Invoice"], bool]


def due_day(inv: Invoice) -> date | None:
    if not inv.due_date:
        return None
    try:
        return date.fromisoformat(inv.due_date[:10])
    except ValueError:
        return None


def days_past_due(inv: Invoice, as_of: date) -> int | None:
    """Whole days after the due date (as of `as_of`, UTC dates); None without a readable due date."""
    due = due_day(inv)
    return None if due is None else (as_of - due).days


@dataclass(frozen=True)
class LocalFilter:
    unpaid: bool = False
    min_days_past_due: int | None = None
    as_of: date | None = None
    text: str | None = None
    failed_payment: bool = False
    """Only invoices with at least one failed payment attempt (payments attributed exactly,
    service/attribution.py)."""

    @property
    def active(self) -> bool:
        return self.unpaid or self.min_days_past_due is not None or bool(self.text) or self.failed_payment

    def params(self) -> dict[str, str]:
        """The filter as cursor entries (next to the API filters)."""
        out: dict[str, str] = {}
        if self.unpaid:
            out[_UNPAID] = "1"
        if self.min_days_past_due is not None:
            out[_LATE] = str(self.min_days_past_due)
        if self.as_of is not None:  # rows, days late and the header of every page agree on it
            out[_AS_OF] = self.as_of.isoformat()
        if self.text:
            out[_TEXT] = self.text
        if self.failed_payment:
            out[_FAILED] = "1"
        return out

    def push_down(self, api: dict[str, str]) -> dict[str, str]:
        """The API filters tightened by what the API can do itself: N days past due as of D
        means due on or before D - N (inclusive, end of that UTC day)."""
        if self.min_days_past_due is None or self.as_of is None:
            return api
        last = self.as_of - timedelta(days=self.min_days_past_due)
        bound = datetime.combine(last, time(23, 59, 59)).isoformat() + "Z"  # 4-digit year (strftime: "1-01-01")
        current = api.get("due_date_end")
        return api | {"due_date_end": min(bound, current) if current else bound}

    def matcher(
        self, text_customers: frozenset[str] = frozenset(), failed_invoices: frozenset[str] | None = None
    ) -> Keep:
        """A predicate over invoices. `text_customers`: ids of customers whose name contains the text;
        `failed_invoices`: ids of invoices with a failed payment attempt (needed by `failed_payment`)."""
        if self.failed_payment and failed_invoices is None:
            raise ValueError("failed_payment needs the invoices with failed payments")
        needle = (self.text or "").casefold()
        late = self.min_days_past_due
        last_due: date | None = None  # N days past due as of D: due on or before D - N
        if late is not None:
            if self.as_of is None:
                raise ValueError("min_days_past_due needs as_of (the service sets it to today)")
            last_due = self.as_of - timedelta(days=late)

        def keep(inv: Invoice) -> bool:
            if failed_invoices is not None and self.failed_payment and (inv.id or "") not in failed_invoices:
                return False
            if (self.unpaid or late is not None) and not is_owed(inv.status):
                return False
            if last_due is not None:
                due = due_day(inv)
                if due is None or due > last_due:
                    return False
            if needle:
                return (
                    needle in (inv.memo or "").casefold()
                    or any(needle in (li.description or "").casefold() for li in inv.line_items or [])
                    or (inv.customer_id or "") in text_customers
                )
            return True

        return keep


def split(filters: dict[str, str]) -> tuple[dict[str, str], LocalFilter]:
    """Cursor filters -> (the API's filters, the server-side filter)."""
    api = {k: v for k, v in filters.items() if not k.startswith(LOCAL_PREFIX)}
    late = filters.get(_LATE)
    as_of = filters.get(_AS_OF)
    local = LocalFilter(
        unpaid=filters.get(_UNPAID) == "1",
        min_days_past_due=int(late) if late is not None else None,
        as_of=date.fromisoformat(as_of) if as_of else None,
        text=filters.get(_TEXT) or None,
        failed_payment=filters.get(_FAILED) == "1",
    )
    if local.min_days_past_due is not None and local.as_of is None:
        raise ValueError("a days-past-due filter without its date")
    return api, local
