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


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"invoice-mcp cursor v1|" + key).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_LEN]

    def encode(self, gap: Gap, filters: dict[str, str], *, back: bool = False) -> str:
        """`back=True`: the cursor means "the chunk that ends at this gap" (prev_cursor)."""
        payload = json.dumps(
            {"m": gap.mode, "a": gap.anchor, "o": gap.offset, "f": filters, "b": int(back)},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")

    def decode(self, cursor: str, filters: dict[str, str]) -> tuple[Gap, dict[str, str], bool]:
        """Return the gap, the cursor's filters and its direction. `filters` given with the call must
        be empty or equal to the cursor's own."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError):
            raise CursorError("cursor is not valid: pass next_cursor exactly as returned") from None
        sig, payload = raw[:_SIG_LEN], raw[_SIG_LEN:]
        if len(sig) < _SIG_LEN or not hmac.compare_digest(sig, self._sign(payload)):
            raise CursorError(
                "cursor is not valid (altered, or from another server): pass next_cursor exactly as returned"
            )
        try:
            data = json.loads(payload)
            gap = Gap(mode=data["m"], anchor=data["a"], offset=int(data["o"]))
            own: dict[str, str] = {str(k): str(v) for k, v in data["f"].items()}
            back = bool(data.get("b", 0))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CursorError("cursor is not valid: pass next_cursor exactly as returned") from None
        if gap.mode not in ("F", "B") or gap.offset < 0:
            raise CursorError("cursor is not valid: pass next_cursor exactly as returned")
        if filters and filters != own:
            raise CursorError(
                "cursor belongs to a query with different filters: repeat the original filters "
                "(or pass only the cursor), or start again without a cursor"
            )
        return gap, own, back
