"""The one page generator every walk over the API uses (lists, summaries, the customer
directory), with the guard against a cursor that never advances."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from invoice_mcp.api.models import Page
from invoice_mcp.service.errors import RunawayUpstream

T = TypeVar("T", bound=BaseModel)

Fetch = Callable[[str | None], Awaitable[Page[T]]]


async def walk(fetch: Fetch[T], *, max_pages: int | None = None) -> AsyncIterator[Page[T]]:
    """Pages in the API's order, starting at the first. Stops at the last page, after
    `max_pages`, or with `RunawayUpstream` when the API hands back a cursor it already gave."""
    after: str | None = None
    seen: set[str] = set()
    pages = 0
    while True:
        page = await fetch(after)
        pages += 1
        yield page
        if not page.has_next_page or not page.end_cursor or not page.data:
            return
        if max_pages is not None and pages >= max_pages:
            return
        if page.end_cursor in seen or page.end_cursor == after:
            raise RunawayUpstream(
                "the API returned the same page cursor twice (its pagination is not advancing); stopped "
                "instead of counting the same invoices again. Narrow the filters or retry later."
            )
        seen.add(page.end_cursor)
        after = page.end_cursor
