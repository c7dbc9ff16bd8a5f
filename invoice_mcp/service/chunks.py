"""Chunked, cursored invoice lists over the API's pages of 100.

A chunk is any window of `limit` rows; its cursors (service/cursors.py) name gaps in
the API's own terms, so a walk continues on any replica. Upstream pages are cached
briefly and fetched once per burst (single flight)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
from cachetools import TTLCache

from invoice_mcp.api.models import PAGE_SIZE, Invoice, Page
from invoice_mcp.service.cursors import CursorCodec, CursorError, Gap
from invoice_mcp.service.errors import InvalidCursor, RunawayUpstream
from invoice_mcp.service.filters import Keep, split

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient

PAGE_CACHE_TTL_S: Final = 60.0
MAX_SCAN_PAGES: Final = 10
"""Upstream pages (of 100) a filtered chunk may read in one call before it stops and says so."""
_START: Final = Gap("F", None, 0)

PageKey = tuple[str, str, str | None]


@dataclass
class Chunk:
    rows: list[Invoice]
    next_cursor: str | None
    prev_cursor: str | None
    has_more: bool
    filters: dict[str, str]
    """The filters the chunk was read with (from the cursor when one was given)."""
    scanned: int = 0
    """Invoices examined by a server-side filter in this call."""
    truncated: bool = False
    """The scan budget (MAX_SCAN_PAGES) ran out before the chunk was full: more may match further on."""


class ChunkReader:
    def __init__(self, client: APIClient, cursors: CursorCodec) -> None:
        self.client = client
        self.cursors = cursors
        self._pages: TTLCache[PageKey, Page[Invoice]] = TTLCache(512, PAGE_CACHE_TTL_S)
        self._page_locks: dict[PageKey, anyio.Lock] = {}

    def decode(self, cursor: str, filters: dict[str, str]) -> tuple[Gap, dict[str, str], bool]:
        try:
            return self.cursors.decode(cursor, filters)
        except CursorError as exc:
            raise InvalidCursor(str(exc)) from None

    def forget(self) -> None:
        """After a write, cached pages may be stale."""
        self._pages.clear()

    async def page(self, filters: Mapping[str, str], mode: str, anchor: str | None) -> Page[Invoice]:
        key = (json.dumps(filters, sort_keys=True), mode, anchor)
        hit = self._pages.get(key)
        if hit is not None:
            return hit
        # Single flight per page: a burst of identical list calls costs one upstream request, not one each.
        lock = self._page_locks.setdefault(key, anyio.Lock())
        try:
            async with lock:
                hit = self._pages.get(key)
                if hit is not None:
                    return hit
                if mode == "F":
                    page = await self.client.list_invoices(limit=PAGE_SIZE, after=anchor, **filters)
                else:
                    page = await self.client.list_invoices(limit=PAGE_SIZE, before=anchor, **filters)
                self._pages[key] = page
                return page
        finally:
            if not lock.locked() and self._page_locks.get(key) is lock:
                del self._page_locks[key]

    async def _read_forward(self, filters: Mapping[str, str], gap: Gap, n: int) -> tuple[list[Invoice], Gap, bool]:
        rows: list[Invoice] = []
        mode, anchor, off = gap.mode, gap.anchor, gap.offset
        seen: set[str | None] = {anchor}
        while True:
            page = await self.page(filters, mode, anchor)
            data = page.data
            start = off if mode == "F" else max(0, len(data) - off)
            take = data[start : start + n - len(rows)]
            rows.extend(take)
            pos = start + len(take)
            if pos < len(data):
                end = Gap("F", anchor, pos) if mode == "F" else Gap("B", anchor, len(data) - pos)
                return rows, end, True
            if mode == "B":
                if not page.end_cursor:
                    return rows, _START, False
            elif not page.has_next_page or not page.end_cursor or not data:
                return rows, Gap("F", anchor, pos), False
            if mode == "F" and page.end_cursor in seen:
                raise RunawayUpstream(
                    "the API returned the same page cursor twice (its pagination is not advancing); stopped"
                )
            mode, anchor, off = "F", page.end_cursor, 0
            seen.add(anchor)
            if len(rows) >= n:
                return rows, Gap("F", anchor, 0), True

    async def _step_back(self, filters: Mapping[str, str], gap: Gap, n: int) -> Gap:
        """The gap `n` rows before `gap` (clamped at the start of the list)."""
        if gap.mode == "F":
            if gap.offset >= n:
                return Gap("F", gap.anchor, gap.offset - n)
            if gap.anchor is None:
                return _START
            page = await self.page(filters, "F", gap.anchor)
            if not page.start_cursor or not page.data:
                return _START
            need, anchor = n - gap.offset, page.start_cursor
        else:
            need, anchor = gap.offset + n, gap.anchor or ""
        seen: set[str] = set()
        while anchor:
            if anchor in seen:
                raise RunawayUpstream("the API returned the same page cursor twice going backwards; stopped")
            seen.add(anchor)
            q = await self.page(filters, "B", anchor)
            if need < len(q.data) or (need == len(q.data) and q.has_previous_page):
                return Gap("B", anchor, need)
            if not q.has_previous_page or not q.start_cursor or not q.data:
                return _START
            need -= len(q.data)
            anchor = q.start_cursor
        return _START

    async def _scan_forward(
        self, filters: Mapping[str, str], keep: Keep, gap: Gap, n: int
    ) -> tuple[list[Invoice], Gap, bool, int, bool]:
        """Like `_read_forward`, keeping only rows that pass `keep`. The end gap is placed at
        the next match (so `has_more` is exact) or where the page budget ran out."""
        rows: list[Invoice] = []
        mode, anchor, off = gap.mode, gap.anchor, gap.offset
        seen: set[str | None] = {anchor}
        pages = scanned = 0
        while True:
            page = await self.page(filters, mode, anchor)
            pages += 1
            data = page.data
            start = off if mode == "F" else max(0, len(data) - off)
            for pos in range(start, len(data)):
                if keep(data[pos]):
                    if len(rows) == n:
                        end = Gap("F", anchor, pos) if mode == "F" else Gap("B", anchor, len(data) - pos)
                        return rows, end, True, scanned, False
                    rows.append(data[pos])
                scanned += 1
            if mode == "B":
                if not page.end_cursor:
                    return rows, _START, False, scanned, False
            elif not page.has_next_page or not page.end_cursor or not data:
                return rows, Gap("F", anchor, len(data)), False, scanned, False
            if mode == "F" and page.end_cursor in seen:
                raise RunawayUpstream(
                    "the API returned the same page cursor twice (its pagination is not advancing); stopped"
                )
            mode, anchor, off = "F", page.end_cursor, 0
            seen.add(anchor)
            if pages >= MAX_SCAN_PAGES:
                return rows, Gap("F", anchor, 0), True, scanned, len(rows) < n

    async def _scan_back(self, filters: Mapping[str, str], keep: Keep, gap: Gap, n: int) -> Gap:
        """The gap before the n-th matching row preceding `gap` (clamped at the start, bounded by the page budget)."""
        if gap == _START:
            return _START
        if gap.mode == "F":
            page = await self.page(filters, "F", gap.anchor)
            head = page.data[: gap.offset]
            hit, need = _nth_from_end(head, keep, n)
            if hit is not None:
                return _START if _first_match(head, keep, hit, gap.anchor is None) else Gap("F", gap.anchor, hit)
            if gap.anchor is None or not page.start_cursor or not page.data:
                return _START
            anchor = page.start_cursor
        else:
            q = await self.page(filters, "B", gap.anchor)
            hit, need = _nth_from_end(q.data[: len(q.data) - gap.offset], keep, n)
            if hit is not None:
                first = _first_match(q.data, keep, hit, not q.has_previous_page)
                return _START if first else Gap("B", gap.anchor, len(q.data) - hit)
            if not q.has_previous_page or not q.start_cursor or not q.data:
                return _START
            anchor = q.start_cursor
        seen: set[str] = set()
        for _ in range(MAX_SCAN_PAGES):
            if anchor in seen:
                raise RunawayUpstream("the API returned the same page cursor twice going backwards; stopped")
            seen.add(anchor)
            q = await self.page(filters, "B", anchor)
            hit, need = _nth_from_end(q.data, keep, need)
            if hit is not None:
                return (
                    _START
                    if _first_match(q.data, keep, hit, not q.has_previous_page)
                    else Gap("B", anchor, len(q.data) - hit)
                )
            if not q.has_previous_page or not q.start_cursor or not q.data:
                return _START
            anchor = q.start_cursor
        return Gap("B", anchor, 0)

    async def chunk(self, filters: dict[str, str], limit: int, cursor: str | None, keep: Keep | None = None) -> Chunk:
        """`limit` rows from the start, or from the gap a cursor names (then the cursor's filters apply).
        With `keep` (a server-side filter), only matching rows count, and the scan is bounded."""
        backwards = False
        gap = _START
        if cursor:
            gap, filters, backwards = self.decode(cursor, filters)
        api, _ = split(filters)
        scanned, truncated = 0, False
        if keep is None:
            if backwards:
                gap = await self._step_back(api, gap, limit)
            rows, end, has_more = await self._read_forward(api, gap, limit)
        else:
            if backwards:
                gap = await self._scan_back(api, keep, gap, limit)
            rows, end, has_more, scanned, truncated = await self._scan_forward(api, keep, gap, limit)
        next_cursor = self.cursors.encode(end, filters) if has_more else None
        prev_cursor = None if gap == _START else self.cursors.encode(gap, filters, back=True)
        return Chunk(
            rows=rows,
            next_cursor=next_cursor,
            prev_cursor=prev_cursor,
            has_more=has_more,
            filters=filters,
            scanned=scanned,
            truncated=truncated,
        )


def _first_match(data: list[Invoice], keep: Keep, i: int, first_page: bool) -> bool:
    """Row `i` is the list's first match: the canonical start (so the chunk there has no prev cursor)."""
    return first_page and not any(keep(x) for x in data[:i])


def _nth_from_end(data: list[Invoice], keep: Keep, n: int) -> tuple[int | None, int]:
    """Index of the n-th row from the end that passes `keep`, or (None, n minus the matches found)."""
    for i in range(len(data) - 1, -1, -1):
        if keep(data[i]):
            n -= 1
            if n == 0:
                return i, 0
    return None, n
