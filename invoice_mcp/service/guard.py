"""The duplicate-create guard: one reservation per invoice fingerprint.

POST /invoices has no idempotency key, so the service makes its own:

1. a normalised fingerprint of the draft (customer, currency, due date with "omitted"
   meaning today, line items as a multiset with descriptions folded and amounts in
   cents), so near-identical bodies are recognised;
2. an atomic reservation of that fingerprint in a `Reservations` store: in memory for
   one process, or Redis (SET NX with expiry, api/shared_state.py) shared by every
   replica. Concurrent identical creates: one holds it, the others are refused;
3. a look at the API itself before the POST (the customer's invoices the API stamped in
   the last 10 minutes, plus 30 minutes of tolerated clock skew, every page of them,
   fingerprinted the same way), which survives restarts and replicas that share nothing
   (but not two replicas whose identical creates overlap: neither invoice exists yet
   when the other looks; only a shared store closes that gap);
4. after the POST the reservation records the outcome for the window: "created"
   (with the invoice) or "possibly" (an ambiguous failure: the invoice may exist),
   and a definite failure releases it.

`allow_duplicate` skips 2 and 3, never 4.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, Protocol

from invoice_mcp.api.models import Invoice
from invoice_mcp.clock import Now
from invoice_mcp.text import clean, to_cents

DUPLICATE_WINDOW_S: Final = 600.0
"""How long a created (or possibly created) invoice blocks an identical one."""
CLOCK_SKEW_S: Final = 1800.0
"""How far behind this server's clock the API's may be: its check of recent invoices looks back
DUPLICATE_WINDOW_S + CLOCK_SKEW_S (40 minutes) by the API's own `created_at` stamps."""
PENDING_TTL_S: Final = 300.0
"""How long an in-progress reservation lives if its holder dies mid-create."""

State = Literal["pending", "created", "possibly"]
Clock = Now


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reservations(Protocol):
    """An atomic key → value store with expiry (values are opaque strings)."""

    async def claim(self, key: str, value: str, ttl_s: float) -> str | None:
        """Store `value` unless `key` holds one: None when claimed, else the value held."""
        ...

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl_s: float) -> None: ...

    async def release(self, key: str, value: str) -> None:
        """Delete `key` if it still holds `value` (a holder never frees another's claim)."""
        ...


class LocalReservations:
    """`Reservations` for one process. Claims are atomic because nothing awaits in between."""

    MAX_KEYS: Final = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._items: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._items[key]
            return None
        return item[0]

    def _prune(self) -> None:
        if len(self._items) < self.MAX_KEYS:
            return
        now = self._clock()
        for k in [k for k, (_, exp) in self._items.items() if exp <= now]:
            del self._items[k]
        while len(self._items) >= self.MAX_KEYS:  # still full: the oldest go first
            del self._items[next(iter(self._items))]

    async def claim(self, key: str, value: str, ttl_s: float) -> str | None:
        held = self._live(key)
        if held is not None:
            return held
        self._prune()
        self._items[key] = (value, self._clock() + ttl_s)
        return None

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        self._items.pop(key, None)
        self._prune()
        self._items[key] = (value, self._clock() + ttl_s)

    async def release(self, key: str, value: str) -> None:
        if self._live(key) == value:
            del self._items[key]


@dataclass(frozen=True)
class Record:
    """What a reservation says about a fingerprint."""

    state: State
    customer_id: str
    at: str
    """RFC 3339 time the create started (UTC): where to look with created_at_start."""
    owner: str = ""
    invoice_id: str | None = None
    invoice_number: str | None = None
    source: Literal["server", "api"] = "server"
    """Who knew: this server's reservations, or the API's own list of recent invoices."""

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> Record | None:
        try:
            data = json.loads(raw)
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return None

    @staticmethod
    def new_owner() -> str:
        return secrets.token_hex(8)


# -- fingerprints ------------------------------------------------------------------------


def _text(value: str | None) -> str:
    return unicodedata.normalize("NFKC", clean(value, 500)).casefold()


def _cents(value: Decimal | float | str | None) -> str:
    try:
        return str(to_cents(Decimal(str(value))))
    except (InvalidOperation, ValueError):
        return "?"


def fingerprint(
    customer_id: str,
    currency: str | None,
    due_date: str | None,
    lines: Iterable[tuple[str | None, Decimal | float | str | None, int | None]],
    *,
    today: str,
) -> str:
    """The identity of an invoice body, blind to what does not change the invoice: line
    order, whitespace and case in descriptions, 10 vs 10.00, due date omitted vs today."""
    body = {
        "customer_id": customer_id.strip(),
        "currency": (currency or "USD").strip().upper(),
        "due_date": (due_date or today)[:10],
        "lines": sorted([_text(d), _cents(a), int(q or 1)] for d, a, q in lines),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def invoice_fingerprint(inv: Invoice, *, today: str) -> str | None:
    """The fingerprint of an invoice the API returned (None when it lacks a customer)."""
    if not inv.customer_id:
        return None
    lines = [(li.description, li.amount, li.quantity) for li in inv.line_items or []]
    created_day = (inv.created_at or "")[:10] or today
    return fingerprint(inv.customer_id, inv.currency, inv.due_date, lines, today=created_day)
