"""Leaf helpers and guards at their edges: money/day text, log redaction of stacks and late
handlers, cursor varints and look-alike anchors, constructor guards, the page walk's budget."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from invoice_mcp.api.models import Invoice, Page
from invoice_mcp.api.ratelimit import LocalRateLimiter
from invoice_mcp.faces.events import BoundedEventStore
from invoice_mcp.logs import MASK, RedactingFilter, protect_all_handlers, setup_logging
from invoice_mcp.server.inputs import to_rfc3339
from invoice_mcp.service.cursors import CursorCodec, CursorError, Position
from invoice_mcp.service.paging import walk
from invoice_mcp.text import day, usd

SECRET = "s3cr3t-value-1234"


def test_unknown_money_and_days_have_a_placeholder() -> None:
    assert usd(None) == "$?"
    assert day(None) == "-" and day("") == "-"


def test_a_stack_in_a_log_record_is_redacted() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None, sinfo=f"Stack: key={SECRET}")
    assert RedactingFilter([SECRET]).filter(record)
    assert record.stack_info is not None
    assert SECRET not in record.stack_info and MASK in record.stack_info


def test_handlers_added_later_get_the_filter_once() -> None:
    redactor = RedactingFilter([SECRET])
    lg = logging.getLogger("invoice_mcp.tests.late")
    handler = logging.NullHandler()
    lg.addHandler(handler)
    try:
        protect_all_handlers(redactor)
        protect_all_handlers(redactor)
        assert handler.filters == [redactor]
    finally:
        lg.removeHandler(handler)


def test_setup_logging_replaces_the_root_handlers() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    noisy = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    old = logging.NullHandler()
    root.addHandler(old)
    try:
        redactor = setup_logging("info", secrets=[SECRET])
        assert old not in root.handlers
        assert len(root.handlers) == 1 and redactor in root.handlers[0].filters
        assert root.level == logging.INFO
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)
        for n, lvl in noisy.items():
            logging.getLogger(n).setLevel(lvl)


def test_a_cursor_with_an_endless_varint_is_refused() -> None:
    codec = CursorCodec(b"k")
    payload = bytes([0]) + b"\xff" * 12
    forged = base64.urlsafe_b64encode(codec._sign(payload) + payload).decode().rstrip("=")
    with pytest.raises(CursorError, match="not valid"):
        codec.decode(forged, {})


@pytest.mark.parametrize("anchor", ["YR==", "YQ=="])
def test_anchors_that_only_look_like_base64_round_trip_exactly(anchor: str) -> None:
    codec = CursorCodec(b"k")
    assert codec.decode(codec.encode(Position("after", anchor, 1), {}), {})[0] == Position("after", anchor, 1)


@pytest.mark.parametrize(("events", "size"), [(0, 1), (1, 0)])
def test_event_store_bounds_must_be_positive(events: int, size: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        BoundedEventStore(max_events=events, max_bytes=size)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_rate_limiter_needs_a_positive_finite_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        LocalRateLimiter(rate)


def test_a_date_time_without_zone_is_taken_as_utc() -> None:
    assert to_rfc3339("2026-01-31T10:00:00", end=False) == "2026-01-31T10:00:00Z"
    assert to_rfc3339("2026-01-31T10:00:00+02:00", end=True) == "2026-01-31T08:00:00Z"


@pytest.mark.anyio
async def test_walk_stops_after_max_pages() -> None:
    asked: list[str | None] = []

    async def fetch(after: str | None) -> Page[Invoice]:
        asked.append(after)
        n = len(asked)
        return Page[Invoice](data=[Invoice(id=f"i{n}")], end_cursor=f"c{n}", has_next_page=True)

    pages: list[Any] = [p async for p in walk(fetch, max_pages=2)]
    assert [p.data[0].id for p in pages] == ["i1", "i2"]
    assert asked == [None, "c1"]
