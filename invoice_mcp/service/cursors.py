"""Stateless, signed cursors for chunked lists.

A cursor names a *gap* between two invoices of one query, in terms the API
understands, so any replica can continue a walk after a restart:

* ``F(after, offset)``: ``offset`` rows into the upstream page fetched with ``after``
  (``after=None`` is the first page);
* ``B(before, k)``: ``k`` rows before the end of the upstream page fetched with
  ``before`` (used only when paging backwards across an upstream page boundary).

The query's filters travel inside the cursor, and the whole thing is signed
(HMAC) so a tampered cursor, or one reused with other filters, is refused with
a clear message instead of silently returning the wrong rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

_SIG_LEN = 10


class CursorError(ValueError):
    """The cursor is malformed, tampered with, or belongs to another query."""


@dataclass(frozen=True)
class Gap:
    mode: Literal["F", "B"]
    anchor: str | None  # upstream cursor (after= for F, before= for B)
    offset: int


_ANCHOR_TEXT, _ANCHOR_B64, _ANCHOR_B64URL = 1, 2, 3


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


def _unpack_anchor(kind: int, raw: bytes) -> str:
    if kind == _ANCHOR_B64:
        return base64.b64encode(raw).decode("ascii")
    if kind == _ANCHOR_B64URL:
        return base64.urlsafe_b64encode(raw).decode("ascii")
    return raw.decode("utf-8")


class CursorCodec:
    """Binary payload: flags (mode, direction, anchor kind), offset, anchor, then the filters as
    compact JSON; signed with a truncated HMAC; URL-safe base64 without padding."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"invoice-mcp cursor v2|" + key).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_LEN]

    def encode(self, gap: Gap, filters: dict[str, str], *, back: bool = False) -> str:
        """`back=True`: the cursor means "the chunk that ends at this gap" (prev_cursor)."""
        kind, anchor = (0, b"") if gap.anchor is None else _pack_anchor(gap.anchor)
        flags = (gap.mode == "B") | (back << 1) | (kind << 2)
        payload = bytes([flags]) + _varint(gap.offset) + _varint(len(anchor)) + anchor
        if filters:
            payload += json.dumps(filters, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")

    def decode(self, cursor: str, filters: dict[str, str]) -> tuple[Gap, dict[str, str], bool]:
        """Return the gap, the cursor's filters and its direction. `filters` given with the call must
        be empty or equal to the cursor's own."""
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
            size, pos = _read_varint(payload, pos)
            kind = flags >> 2
            anchor = _unpack_anchor(kind, payload[pos : pos + size]) if kind else None
            rest = payload[pos + size :]
            data = json.loads(rest) if rest else {}
            own: dict[str, str] = {str(k): str(v) for k, v in data.items()}
            gap = Gap(mode="B" if flags & 1 else "F", anchor=anchor, offset=offset)
            back = bool(flags & 2)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise CursorError("cursor is not valid: pass next_cursor exactly as returned") from None
        if filters and filters != own:
            raise CursorError(
                "cursor belongs to a query with different filters: repeat the original filters "
                "(or pass only the cursor), or start again without a cursor"
            )
        return gap, own, back
