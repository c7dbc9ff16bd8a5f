"""The signed cursor: every anchor shape round-trips; base64 anchors are carried as bytes."""

from __future__ import annotations

import base64

import pytest

from invoice_mcp.service.cursors import CursorCodec, CursorError, Position

CODEC = CursorCodec(b"k" * 32)
STD = base64.b64encode(b"\xfb\xff\xbfI\x00\x00inv_abc" * 3).decode()  # has + and / and padding
URL = base64.urlsafe_b64encode(b"\xfb\xff\xbfI\x00\x00inv_abc" * 3).decode()


@pytest.mark.parametrize("anchor", [None, STD, URL, "opaque:cursor/with spaces é", "", "YQ"])
@pytest.mark.parametrize("side", ["after", "before"])
@pytest.mark.parametrize("back", [False, True])
def test_round_trip(anchor: str | None, side: str, back: bool) -> None:
    gap = Position(side, anchor, 300)  # type: ignore[arg-type]
    filters = {"status": "open", "text": "Per SOW «x»", "min_days_past_due": 60, "unpaid": True}
    cursor = CODEC.encode(gap, filters, back=back)
    assert CODEC.decode(cursor, {}) == (gap, filters, back)
    assert CODEC.decode(cursor, dict(filters)) == (gap, filters, back)


def test_base64_anchor_is_not_base64_twice() -> None:
    cursor = CODEC.encode(Position("after", STD, 0), {})
    assert len(cursor) < len(STD) + 20


@pytest.mark.parametrize("as_of", ["2026-11-25", "2000-01-01", "1999-12-31", "0001-01-01", "9999-12-31"])
def test_as_of_round_trips_and_costs_a_few_bytes_from_2000_on(as_of: str) -> None:
    query = {"as_of": as_of, "status": "open"}
    cursor = CODEC.encode(Position("after", None, 3), query)
    assert CODEC.decode(cursor) == (Position("after", None, 3), query, False)
    plain = CODEC.encode(Position("after", None, 3), {"status": "open"})
    assert len(cursor) - len(plain) <= (6 if as_of >= "2000" else 32)


def test_altered_foreign_and_mismatched_cursors_are_refused() -> None:
    cursor = CODEC.encode(Position("after", STD, 5), {"status": "paid"})
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for bad in (flipped, cursor[:8], "!!", CursorCodec(b"other").encode(Position("after", None, 0), {})):
        with pytest.raises(CursorError, match="not valid"):
            CODEC.decode(bad, {})
    with pytest.raises(CursorError, match="different filters"):
        CODEC.decode(cursor, {"status": "open"})
