"""The signed cursor: every anchor shape round-trips; base64 anchors are carried as bytes."""

from __future__ import annotations

import base64

import pytest

from invoice_mcp.service.cursors import CursorCodec, CursorError, Gap

CODEC = CursorCodec(b"k" * 32)
STD = base64.b64encode(b"\xfb\xff\xbfI\x00\x00inv_abc" * 3).decode()  # has + and / and padding
URL = base64.urlsafe_b64encode(b"\xfb\xff\xbfI\x00\x00inv_abc" * 3).decode()


@pytest.mark.parametrize("anchor", [None, STD, URL, "opaque:cursor/with spaces é", "", "YQ"])
@pytest.mark.parametrize("mode", ["F", "B"])
@pytest.mark.parametrize("back", [False, True])
def test_round_trip(anchor: str | None, mode: str, back: bool) -> None:
    gap = Gap(mode, anchor, 300)  # type: ignore[arg-type]
    filters = {"status": "open", "~text": "Per SOW «x»", "~late": "60"}
    cursor = CODEC.encode(gap, filters, back=back)
    assert CODEC.decode(cursor, {}) == (gap, filters, back)
    assert CODEC.decode(cursor, dict(filters)) == (gap, filters, back)


def test_base64_anchor_is_not_base64_twice() -> None:
    cursor = CODEC.encode(Gap("F", STD, 0), {})
    assert len(cursor) < len(STD) + 20


def test_altered_foreign_and_mismatched_cursors_are_refused() -> None:
    cursor = CODEC.encode(Gap("F", STD, 5), {"status": "paid"})
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for bad in (flipped, cursor[:8], "!!", CursorCodec(b"other").encode(Gap("F", None, 0), {})):
        with pytest.raises(CursorError, match="not valid"):
            CODEC.decode(bad, {})
    with pytest.raises(CursorError, match="different filters"):
        CODEC.decode(cursor, {"status": "open"})
