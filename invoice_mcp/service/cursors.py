"""Stateless, signed cursors for chunked lists.

A cursor names a *position* between two rows of one query, in terms the API
understands, so any replica can continue a walk after a restart:

* ``Position("after", anchor, offset)``: ``offset`` rows into the upstream page fetched with
  ``after=anchor`` (``anchor=None`` is the first page);
* ``Position("before", anchor, k)``: ``k`` rows before the end of the upstream page fetched with
  ``before=anchor`` (used only when paging backwards across an upstream page boundary).

The query (service/query.py, sealed as its non-default fields) travels inside the cursor, and
the whole thing is signed (HMAC with the cursor key) so a tampered cursor, or one reused with
other filters, is refused with a clear message instead of silently returning the wrong rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

_SIG_LEN = 10


class CursorError(ValueError):
    """The cursor is malformed, tampered with, or belongs to another query."""


Side = Literal["after", "before"]
"""How the upstream page a position is in was fetched: with `after=anchor` or `before=anchor`."""


@dataclass(frozen=True)
class Position:
    side: Side
    anchor: str | None
    """The upstream page cursor the page was fetched with."""
    offset: int
    """Rows into the page (side "after"), or rows before its end (side "before")."""


DAY_KEY: Final = "as_of"
"""The date every invoice cursor carries (its rows' days late are counted from it): packed as a
day number rather than as JSON."""
START: Final = Position("after", None, 0)
"""Before the first row of the list."""
DIFFERENT_FILTERS: Final = (
    "cursor belongs to a query with different filters: repeat the original filters "
    "(or pass only the cursor), or start again without a cursor"
)

_ANCHOR_TEXT, _ANCHOR_B64, _ANCHOR_B64URL = 1, 2, 3
_DAY_ZERO: Final = date(2000, 1, 1).toordinal()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _pack_anchor(anchor: str) -> tuple[int, bytes]:
    """Upstream cursors are usually base64 already: carried as their bytes, so the cursor
    is not base64 of base64 (a third shorter, and fewer tokens for the model to copy)."""
    for kind, dec, enc in (
        (_ANCHOR_B64, base64.b64decode, base64.b64encode),
        (_ANCHOR_B64URL, base64.urlsafe_b64decode, base64.urlsafe_b64encode),
    ):
        try:
            raw = dec(anchor.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            continue
        if enc(raw).decode("ascii") == anchor:
            return kind, raw
    return _ANCHOR_TEXT, anchor.encode("utf-8")


def _day_number(value: Any) -> int | None:
    """A YYYY-MM-DD from 2000-01-01 on as its day number from then (two bytes in the cursor until
    2044, not twenty of JSON); None for anything else (which then travels as JSON)."""
    try:
        days = date.fromisoformat(value).toordinal() - _DAY_ZERO if isinstance(value, str) and len(value) == 10 else -1
    except ValueError:
        return None
    return days if days >= 0 else None


def _day_of(number: int) -> str:
    return date.fromordinal(number + _DAY_ZERO).isoformat()


def _unpack_anchor(kind: int, raw: bytes) -> str:
    if kind == _ANCHOR_B64:
        return base64.b64encode(raw).decode("ascii")
    if kind == _ANCHOR_B64URL:
        return base64.urlsafe_b64encode(raw).decode("ascii")
    return raw.decode("utf-8")


class CursorCodec:
    """Binary payload: flags (side, direction, anchor kind, day), offset, anchor, the as_of day
    number, then the rest of the query as compact JSON; signed with a truncated HMAC; URL-safe
    base64 without padding."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"invoice-mcp cursor v3|" + key).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_LEN]

    def encode(self, position: Position, query: Mapping[str, Any], *, back: bool = False) -> str:
        """`query`: the sealed query (JSON values). `back=True`: the cursor means "the chunk that
        ends at this position" (prev_cursor)."""
        kind, anchor = (0, b"") if position.anchor is None else _pack_anchor(position.anchor)
        rest = dict(query)
        day = _day_number(rest.get(DAY_KEY))
        if day is not None:
            del rest[DAY_KEY]
        flags = (position.side == "before") | (back << 1) | (kind << 2) | ((day is not None) << 4) | (bool(rest) << 5)
        payload = bytes([flags]) + _varint(position.offset)
        if day is not None:
            payload += _varint(day)
        if rest:  # the anchor's length, then the JSON after it; without JSON the anchor runs to the end
            payload += _varint(len(anchor)) + anchor
            payload += json.dumps(rest, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
        else:
            payload += anchor
        return base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")

    def decode(self, cursor: str, query: Mapping[str, Any] | None = None) -> tuple[Position, dict[str, Any], bool]:
        """The position, the cursor's sealed query and its direction. A `query` given with the
        call must be empty or equal to the cursor's own."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError):
            raise CursorError("cursor is not valid: pass next_cursor exactly as returned") from None
        sig, payload = raw[:_SIG_LEN], raw[_SIG_LEN:]
        if len(sig) < _SIG_LEN or not payload or not hmac.compare_digest(sig, self._sign(payload)):
            raise CursorError(
                "cursor is not valid (altered, or from another server): pass next_cursor exactly as returned"
            )
        try:
            flags = payload[0]
            offset, pos = _read_varint(payload, 1)
            day = None
            if flags & 16:
                day, pos = _read_varint(payload, pos)
            size = len(payload) - pos
            if flags & 32:
                size, pos = _read_varint(payload, pos)
            kind = (flags >> 2) & 3
            anchor = _unpack_anchor(kind, payload[pos : pos + size]) if kind else None
            rest = payload[pos + size :]
            data = json.loads(rest) if rest else {}
            own: dict[str, Any] = {str(k): v for k, v in data.items()}
            if day is not None:
                own[DAY_KEY] = _day_of(day)
            position = Position("before" if flags & 1 else "after", anchor=anchor, offset=offset)
            back = bool(flags & 2)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError):
            raise CursorError("cursor is not valid: pass next_cursor exactly as returned") from None
        if query and dict(query) != own:
            raise CursorError(DIFFERENT_FILTERS)
        return position, own, back
