"""Opaque cursors and keyset pagination over ascending ``(created_ts, id)`` key lists.

List order is newest first, i.e. the key list read backwards. A cursor is a keyset position,
so paging is stable under inserts, and each page costs one ``bisect`` plus a scan that stops
as soon as ``limit + 1`` matches are found; a full walk is linear, never quadratic.

Cursors are *standard* base64 (not urlsafe) of a fixed prefix + kind + position. The prefix
bytes encode to ``+/+/`` and the payload is padded to a length that needs ``=`` padding, so every
cursor contains characters that must be percent-encoded in a query string.
"""

from __future__ import annotations

import base64
import binascii
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
Key = tuple[int, str]

_PREFIX = b"\xfb\xff\xbf"  # base64 "+/+/"


class CursorError(ValueError):
    """The cursor is not one this sandbox issued for this collection."""


def encode_cursor(kind: bytes, key: Key) -> str:
    ident = key[1].encode()
    raw = _PREFIX + kind + struct.pack(">qB", key[0], len(ident)) + ident
    if len(raw) % 3 == 0:
        raw += b"\x00"  # force "=" padding
    return base64.b64encode(raw).decode("ascii")


def decode_cursor(kind: bytes, cursor: str) -> Key:
    try:
        raw = base64.b64decode(cursor.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise CursorError("malformed cursor") from exc
    head = len(_PREFIX) + len(kind)
    if len(raw) < head + 9 or raw[: len(_PREFIX)] != _PREFIX or raw[len(_PREFIX) : head] != kind:
        raise CursorError("unknown cursor")
    ts, n = struct.unpack(">qB", raw[head : head + 9])
    ident = raw[head + 9 : head + 9 + n]
    rest = raw[head + 9 + n :]
    if len(ident) != n or rest.strip(b"\x00") or len(rest) > 1:
        raise CursorError("unknown cursor")
    try:
        return (ts, ident.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise CursorError("unknown cursor") from exc


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool
    has_previous_page: bool


def keyset_page(
    keys: Sequence[Key],
    items: Sequence[T],
    *,
    match: Callable[[T], bool],
    limit: int,
    after: Key | None = None,
    before: Key | None = None,
    lo_key: Key | None = None,
    hi_key: Key | None = None,
) -> Page[T]:
    """One page in list (descending) order from ``items`` sorted ascending by ``keys``.

    ``lo_key``/``hi_key`` bound the window with bisect (inclusive lower, exclusive upper) so that
    range filters do not scan; ``match`` applies the remaining filters.
    ``after=X``: matches strictly after X in list order. ``before=X``: the ``limit`` matches
    immediately preceding X, still returned in list order.
    """
    lo = 0 if lo_key is None else bisect_left(keys, lo_key)
    hi = len(keys) if hi_key is None else bisect_left(keys, hi_key)
    if lo >= hi:
        return Page([], False, False)
    found: list[T] = []
    if before is None:
        start = hi if after is None else max(lo, min(hi, bisect_left(keys, after)))
        for i in range(start - 1, lo - 1, -1):
            if match(items[i]):
                found.append(items[i])
                if len(found) > limit:
                    break
        more = len(found) > limit
        # Something at or before the cursor (in list order) means there is a previous page.
        prev = after is not None and any(match(items[i]) for i in range(start, hi))
        return Page(found[:limit], more, prev)
    start = max(lo, min(hi, bisect_right(keys, before)))
    for i in range(start, hi):
        if match(items[i]):
            found.append(items[i])
            if len(found) > limit:
                break
    more = len(found) > limit
    page = found[:limit]
    page.reverse()
    nxt = any(match(items[i]) for i in range(start - 1, lo - 1, -1))
    return Page(page, nxt, more)
