"""The one pager: how every walk over the API's pages moves from page to page, with the guard
against pagination that never advances written once.

`PageTrail` follows the cursors one walk is handed; `next_after` and `next_before` say where a
page leads (or that the list ends there); `walk` is the plain forward walk from the first page
that summaries, the customer directory, payments per invoice and attribution use. The chunked
lists (service/chunks.py) start anywhere and also go backwards, with the same steps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, TypeVar

from pydantic import BaseModel

from invoice_mcp.api.models import Page
from invoice_mcp.service.errors import RunawayUpstream

T = TypeVar("T", bound=BaseModel)

Fetch = Callable[[str | None], Awaitable[Page[T]]]

RUNAWAY: Final = (
    "the API returned the same page cursor twice (its pagination is not advancing{how}); stopped instead of "
    "reading the same rows again. Narrow the filters or retry later."
)


class PageTrail:
    """The page cursors one walk has followed. Being handed one of them again means the API's
    pagination is going round in circles: the walk stops with `RunawayUpstream` rather than
    count the same rows again (or never end)."""

    def __init__(self, *, backwards: bool = False, start: str | None = None) -> None:
        self._seen: set[str | None] = set() if start is None and backwards else {start}
        self._how = ", going backwards" if backwards else ""

    def follow(self, cursor: str) -> str:
        if cursor in self._seen:
            raise RunawayUpstream(RUNAWAY.format(how=self._how))
        self._seen.add(cursor)
        return cursor


def next_after(page: Page[T], trail: PageTrail, *, fetched_before: bool = False) -> str | None:
    """The `after=` of the page that follows `page`, or None at the end of the list. A page
    fetched with `before=` is followed whenever it has an end cursor: its has_next_page describes
    the other direction."""
    if fetched_before:
        return trail.follow(page.end_cursor) if page.end_cursor else None
    if not page.has_next_page or not page.end_cursor or not page.data:
        return None
    return trail.follow(page.end_cursor)


def next_before(page: Page[T], trail: PageTrail) -> str | None:
    """The `before=` of the page that precedes `page`, or None at the start of the list."""
    if not page.has_previous_page or not page.start_cursor or not page.data:
        return None
    return trail.follow(page.start_cursor)


async def walk(fetch: Fetch[T], *, max_pages: int | None = None) -> AsyncIterator[Page[T]]:
    """Pages in the API's order, starting at the first. Stops at the last page, after
    `max_pages`, or with `RunawayUpstream` when the API hands back a cursor it already gave."""
    trail = PageTrail()
    after: str | None = None
    pages = 0
    while True:
        page = await fetch(after)
        pages += 1
        yield page
        if max_pages is not None and pages >= max_pages:
            return
        after = next_after(page, trail)
        if after is None:
            return
