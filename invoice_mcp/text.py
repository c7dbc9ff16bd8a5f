"""Formatting for the model: compact money, dates, and untrusted text made safe.

Text that comes from the API (memos, line descriptions, customer names) is data
written by third parties. It is stripped of control and invisible characters,
bounded in length, and quoted, so it cannot pass itself off as instructions.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
_WS = re.compile(r"\s+")
# Terminal escape sequences (CSI, OSC, C1 CSI, two-character ESC): dropped whole, not just their ESC.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]{0,256}(?:\x07|\x1b\\)|\x9b[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]"
)


def clean(value: str | None, max_len: int = 200) -> str:
    """Drop control/format/private-use characters (incl. zero-width and bidi
    overrides), collapse whitespace, and cut to `max_len` characters."""
    if not value:
        return ""
    if value.isprintable():  # fast path: nothing to drop (isprintable is False for every C* char)
        text = _WS.sub(" ", value).strip()
        return text if len(text) <= max_len else text[: max_len - 1].rstrip() + "…"
    kept = []
    for ch in _ANSI.sub("", value):
        if ch.isspace():  # \n, \r, \v, \f, NEL, U+2028/2029...: a separator, so words stay apart
            kept.append(" ")
        elif unicodedata.category(ch)[0] == "C":
            continue
        else:
            kept.append(ch)
    text = _WS.sub(" ", "".join(kept)).strip()
    if len(text) > max_len:
        text = text[: max_len - 1].rstrip() + "…"
    return text


def quoted(value: str | None, max_len: int = 200) -> str:
    """Untrusted text as an inert quotation: «…» with the guillemets removed inside."""
    text = clean(value, max_len).replace("«", '"').replace("»", '"')
    return f"«{text}»"


def to_cents(value: Decimal) -> Decimal:
    """Rounded to whole cents, halves up (as invoices are totalled)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def usd(value: Decimal | None) -> str:
    if value is None:
        return "$?"
    v = to_cents(value)
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v):,.2f}"


def money_text(value: Decimal | None, currency: str | None = "USD") -> str:
    """`$1,234.50` for dollars (or no currency given), `1,234.50 EUR` for any other currency."""
    code = clean(currency, 12).upper()
    if code in ("", "USD"):
        return usd(value)
    if value is None:
        return f"? {code}"
    v = to_cents(value)
    return f"{'-' if v < 0 else ''}{abs(v):,.2f} {code}"


def day(value: str | None) -> str:
    """`2026-10-01T00:00:00Z` → `2026-10-01`; unknown shapes pass through cleaned."""
    if not value:
        return "-"
    return clean(value[:10] if len(value) >= 10 and value[4] == "-" else value, 32)
