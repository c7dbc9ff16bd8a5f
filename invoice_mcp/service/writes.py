"""Writes: create, archive, restore; the duplicate-create guard.

The tool layer describes an invoice as a `Draft`; only this module builds the
wire model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from cachetools import TTLCache

from invoice_mcp.api.errors import AmbiguousWriteError, NotFoundError
from invoice_mcp.api.models import Invoice, NewInvoice, NewLineItem
from invoice_mcp.service.errors import NotFound, PossiblyCreated
from invoice_mcp.text import q2

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient

DUPLICATE_WINDOW_S: Final = 600.0


@dataclass(frozen=True)
class DraftLine:
    description: str
    amount: Decimal
    """Unit price, dollars."""
    quantity: int


@dataclass(frozen=True)
class Draft:
    """An invoice to create, as the user described it."""

    customer_id: str
    lines: tuple[DraftLine, ...]
    due_date: str | None = None
    currency: str = "USD"
    exclude_from_autopay: bool | None = None

    @property
    def total(self) -> Decimal:
        return q2(sum((li.amount * li.quantity for li in self.lines), Decimal("0")))

    def wire(self) -> NewInvoice:
        return NewInvoice(
            customer_id=self.customer_id,
            currency=self.currency,
            due_date=self.due_date,
            exclude_from_autopay=self.exclude_from_autopay,
            line_items=[
                NewLineItem(description=li.description, amount=li.amount, quantity=li.quantity) for li in self.lines
            ],
        )


@dataclass
class RecentCreate:
    invoice_id: str
    invoice_number: str | None


def fingerprint(draft: Draft) -> str:
    body = draft.wire().to_json()
    body.pop("exclude_from_autopay", None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Writer:
    def __init__(self, client: APIClient) -> None:
        self.client = client
        self._recent: TTLCache[str, RecentCreate] = TTLCache(1024, DUPLICATE_WINDOW_S)

    def recent_duplicate(self, draft: Draft) -> RecentCreate | None:
        return self._recent.get(fingerprint(draft))

    async def create(self, draft: Draft) -> Invoice:
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            inv = await self.client.create_invoice(draft.wire())
        except AmbiguousWriteError as exc:
            raise PossiblyCreated(exc.message, draft.customer_id, started) from None
        except NotFoundError:
            raise NotFound("customer", draft.customer_id) from None
        if inv.id:
            self._recent[fingerprint(draft)] = RecentCreate(inv.id, inv.invoice_number)
        return inv

    async def archive(self, invoice_id: str) -> Invoice:
        try:
            return await self.client.archive_invoice(invoice_id)
        except NotFoundError:
            raise NotFound("invoice", invoice_id) from None

    async def restore(self, invoice_id: str) -> Invoice:
        try:
            return await self.client.restore_invoice(invoice_id)
        except NotFoundError:
            raise NotFound("invoice", invoice_id) from None
