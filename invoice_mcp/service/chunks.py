"""Chunked, cursored lists over the API's pages of 100: invoices and payments alike.

A chunk is any window of `limit` rows; its cursors (service/cursors.py) name positions in the
API's own terms, so a walk continues on any replica, forwards or backwards. Page to page it moves
with the one pager (service/paging.py); upstream pages are cached briefly and fetched once per
burst (service/cache.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel

from invoice_mcp.api.models import PAGE_SIZE, Page
from invoice_mcp.service.cache import SingleFlightCache
from invoice_mcp.service.cursors import START, CursorCodec, Position, Side
from invoice_mcp.service.paging import PageTrail, next_after, next_before

T = TypeVar("T", bound=BaseModel)

PAGE_CACHE_TTL_S: Final = 60.0
MAX_SCAN_PAGES: Final = 10
"""Upstream pages (of 100) a filtered chunk may read in one call before it stops and says so."""

PageKey = tuple[str, Side, str | None]
ListPage = Callable[..., Awaitable[Page[T]]]
"""The API's list call: `(limit=, after= or before=, **filters)`."""
RowTest = Callable[[T], bool]


@dataclass
class Chunk(Generic[T]):
    rows: list[T]
    next_cursor: str | None
    prev_cursor: str | None
    has_more: bool
    scanned: int = 0
    """Rows examined by a server-side filter in this call."""
    truncated: bool = False
    """The scan budget (MAX_SCAN_PAGES) ran out before the chunk was full: more may match further on."""


@dataclass
class _Stretch(Generic[T]):
    """What one forward read found: rows, the position after them, and whether more follow."""

    rows: list[T]
    end: Position
    has_more: bool
    scanned: int = 0
    truncated: bool = False


def _position(side: Side, anchor: str | None, data_len: int, index: int) -> Position:
    """The position just before row `index` of a page fetched from `side` of `anchor`."""
    return Position("after", anchor, index) if side == "after" else Position("before", anchor, data_len - index)


class ChunkReader(Generic[T]):
    """Chunks of one kind of list (invoices, payments), over its cached upstream pages."""

    def __init__(self, fetch: ListPage[T], cursors: CursorCodec, *, cached_pages: int = 512) -> None:
        self.fetch = fetch
        self.cursors = cursors
        self.pages: SingleFlightCache[PageKey, Page[T]] = SingleFlightCache(cached_pages, PAGE_CACHE_TTL_S)

    def forget(self) -> None:
        """After a write, cached pages may be stale."""
        self.pages.clear()

    async def page(self, params: Mapping[str, str], side: Side, anchor: str | None) -> Page[T]:
        """One upstream page, cached briefly; a burst of identical reads costs one request."""

        async def load() -> Page[T]:
            return await self.fetch(limit=PAGE_SIZE, **{side: anchor}, **params)

        return await self.pages.get((json.dumps(params, sort_keys=True), side, anchor), load)

    async def _forward(
        self, params: Mapping[str, str], start: Position, n: int, keep: RowTest[T] | None
    ) -> _Stretch[T]:
        """`n` rows (that pass `keep`, when given) from `start`. Without `keep` the end is placed
        at the next upstream page once the chunk is full; with it, at the next match (so `has_more`
        is exact) or where the page budget ran out."""
        rows: list[T] = []
        side, anchor, offset = start.side, start.anchor, start.offset
        trail = PageTrail(start=anchor if side == "after" else None)
        pages = scanned = 0
        while True:
            page = await self.page(params, side, anchor)
            pages += 1
            data = page.data
            first = offset if side == "after" else max(0, len(data) - offset)
            for index in range(first, len(data)):
                if keep is None or keep(data[index]):
                    if len(rows) == n:
                        return _Stretch(rows, _position(side, anchor, len(data), index), True, scanned)
                    rows.append(data[index])
                scanned += 1
            following = next_after(page, trail, fetched_before=side == "before")
            if following is None:
                end = START if side == "before" else Position("after", anchor, len(data))
                return _Stretch(rows, end, False, scanned)
            side, anchor, offset = "after", following, 0
            if keep is None and len(rows) >= n:
                return _Stretch(rows, Position("after", anchor, 0), True)
            if keep is not None and pages >= MAX_SCAN_PAGES:
                return _Stretch(rows, Position("after", anchor, 0), True, scanned, len(rows) < n)

    async def _step_back(self, params: Mapping[str, str], at: Position, n: int) -> Position:
        """The position `n` rows before `at` (clamped at the start of the list)."""
        if at.side == "after":
            if at.offset >= n:
                return Position("after", at.anchor, at.offset - n)
            if at.anchor is None:
                return START
            page = await self.page(params, "after", at.anchor)
            if not page.start_cursor or not page.data:
                return START
            need, anchor = n - at.offset, page.start_cursor
        else:
            need, anchor = at.offset + n, at.anchor or ""
        trail = PageTrail(backwards=True)
        before: str | None = trail.follow(anchor) if anchor else None
        while before:
            page = await self.page(params, "before", before)
            if need < len(page.data) or (need == len(page.data) and page.has_previous_page):
                return Position("before", before, need)
            need -= len(page.data)
            before = next_before(page, trail)
        return START

    async def _scan_back(self, params: Mapping[str, str], keep: RowTest[T], at: Position, n: int) -> Position:
        """The position before the n-th matching row preceding `at` (clamped at the start,
        bounded by the page budget)."""
        if at == START:
            return START
        page = await self.page(params, at.side, at.anchor)
        on_first_page = at.anchor is None if at.side == "after" else not page.has_previous_page
        head = page.data[: at.offset] if at.side == "after" else page.data[: len(page.data) - at.offset]
        hit, need = _nth_from_end(head, keep, n)
        if hit is not None:
            if _first_match(page.data, keep, hit, on_first_page):
                return START
            return _position(at.side, at.anchor, len(page.data), hit)
        trail = PageTrail(backwards=True)
        if at.side == "before":
            before = next_before(page, trail)
        elif at.anchor is None or not page.start_cursor or not page.data:
            return START
        else:
            before = trail.follow(page.start_cursor)
        for _ in range(MAX_SCAN_PAGES):
            if before is None:
                return START
            page = await self.page(params, "before", before)
            hit, need = _nth_from_end(page.data, keep, need)
            if hit is not None:
                if _first_match(page.data, keep, hit, not page.has_previous_page):
                    return START
                return Position("before", before, len(page.data) - hit)
            before = next_before(page, trail)
        return START if before is None else Position("before", before, 0)

    async def chunk(
        self,
        params: Mapping[str, str],
        sealed: Mapping[str, Any],
        limit: int,
        at: Position = START,
        *,
        back: bool = False,
        keep: RowTest[T] | None = None,
    ) -> Chunk[T]:
        """`limit` rows from `at` (or the `limit` rows that end there, `back=True`). `params`: the
        API's filters; `sealed`: the query the chunk's cursors carry. With `keep` (a server-side
        filter), only matching rows count, and the scan is bounded."""
        if back:
            at = await (
                self._step_back(params, at, limit) if keep is None else self._scan_back(params, keep, at, limit)
            )
        got = await self._forward(params, at, limit, keep)
        return Chunk(
            rows=got.rows,
            next_cursor=self.cursors.encode(got.end, sealed) if got.has_more else None,
            prev_cursor=None if at == START else self.cursors.encode(at, sealed, back=True),
            has_more=got.has_more,
            scanned=got.scanned if keep is not None else 0,
            truncated=got.truncated,
        )


def _first_match(data: list[T], keep: RowTest[T], i: int, first_page: bool) -> bool:
    """Row `i` is the list's first match: the canonical start (so the chunk there has no prev cursor)."""
    return first_page and not any(keep(x) for x in data[:i])


def _nth_from_end(data: list[T], keep: RowTest[T], n: int) -> tuple[int | None, int]:
    """Index of the n-th row from the end that passes `keep`, or (None, n minus the matches found)."""
    for i in range(len(data) - 1, -1, -1):
        if keep(data[i]):
            n -= 1
            if n == 0:
                return i, 0
    return None, n
