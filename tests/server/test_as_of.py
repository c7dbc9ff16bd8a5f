"""One clock: every date the server reasons with is the API's (its `Date` header) or the
caller's `as_of`, never the host's. The sandbox's day is fixed (tests/conftest.py TODAY) while the
real date moves on, so each assertion here fails if a path reads the host clock instead."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.api.client import APIClient
from invoice_mcp.clock import ApiClock, parse_http_date
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.service import InvoiceService

from ..conftest import TODAY, settings_for, text_of
from .test_money import BUCKETS, dec, oracle

pytestmark = pytest.mark.anyio

TWO_MONTHS_BACK = dt.date(2026, 9, 25)
assert (TODAY.month - TWO_MONTHS_BACK.month, TODAY.day) == (2, TWO_MONTHS_BACK.day)


def _owed(inv: dict[str, Any]) -> bool:
    return inv["status"] not in {"paid", "void", "draft", "archived"}


def _late(inv: dict[str, Any], as_of: dt.date) -> int:
    return (as_of - dt.date.fromisoformat(inv["due_date"][:10])).days


async def test_list_and_summary_as_of_two_months_back_agree_with_that_date(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    by_number = {i["invoice_number"]: i for i in sandbox.invoices(include_archived=False)}
    back = TWO_MONTHS_BACK.isoformat()
    seen = 0
    differs = 0
    args: dict[str, Any] = {"limit": 100, "as_of": back}
    for _ in range(10):
        res = await mcp_client.call_tool("list_invoices", args)
        assert not res.is_error, text_of(res)
        data, text = res.structured_content, text_of(res)
        assert data is not None and data["as_of"] == back
        if data["rows"]:
            assert f"as of {back}" in text.splitlines()[0]
        lines = {ln.split(" ", 1)[0]: ln for ln in text.splitlines()}
        for row in data["rows"]:
            inv = by_number[row[0]]
            late = _late(inv, TWO_MONTHS_BACK)
            if _owed(inv) and late > 0:
                assert row[6] == late and lines[row[0]].endswith(f", {late}d late"), row
            else:
                assert row[6] is None and "late" not in lines[row[0]], row
            differs += _owed(inv) and late != _late(inv, TODAY)
            seen += 1
        if not data.get("next_cursor"):
            break
        args = {"cursor": data["next_cursor"], "limit": 100}  # the cursor carries as_of
    assert seen == len(by_number)
    assert differs > 0, "the test data must make the two dates disagree somewhere"

    res = await mcp_client.call_tool("summarize_invoices", {"as_of": back, "top": 50})
    assert not res.is_error, text_of(res)
    got = res.structured_content
    assert got is not None and got["as_of"] == back and f"as of {back}" in text_of(res)
    want = oracle(sandbox, TWO_MONTHS_BACK)
    assert {k: dec(b["balance"]) for k, b in got["aging"].items()} == want["aging"]
    assert want["aging"] != oracle(sandbox, TODAY)["aging"]
    assert set(got["aging"]) == set(BUCKETS)


async def test_without_as_of_today_is_the_apis_day_not_the_hosts(mcp_client: Client, sandbox: Sandbox) -> None:
    listed = await mcp_client.call_tool("list_invoices", {"limit": 5})
    assert listed.structured_content is not None and listed.structured_content["as_of"] == TODAY.isoformat()
    summary = await mcp_client.call_tool("summarize_invoices", {})  # as_of decided before the first page
    assert summary.structured_content is not None and summary.structured_content["as_of"] == TODAY.isoformat()
    late = await mcp_client.call_tool("list_invoices", {"min_days_past_due": 30, "limit": 100})
    want = sorted(
        i["invoice_number"] for i in sandbox.invoices(include_archived=False) if _owed(i) and _late(i, TODAY) >= 30
    )
    rows = late.structured_content["rows"] if late.structured_content else []
    assert len(want) <= 100 and sorted(r[0] for r in rows) == want


async def test_the_service_clock_follows_the_api_whatever_the_host_clock_says(sandbox: Sandbox) -> None:
    far = datetime(2031, 7, 4, 3, 0, tzinfo=UTC)
    clock = ApiClock(local=lambda: far)
    async with APIClient(settings_for(sandbox), clock=clock) as client:
        svc = InvoiceService(client, cursor_key=b"k" * 32)
        assert svc.today() == far.date()  # nothing heard from the API yet
        assert await svc.api_today() == TODAY
        assert abs(clock.now() - datetime.combine(TODAY, dt.time(12), UTC)) < dt.timedelta(minutes=5)


def test_date_headers_are_read_within_bounds() -> None:
    assert parse_http_date("Wed, 25 Nov 2026 12:00:00 GMT") == datetime(2026, 11, 25, 12, tzinfo=UTC)
    for hostile in (None, "", "soon", "Wed, 25 Nov 9999 12:00:00 GMT", "Mon, 01 Jan 1900 00:00:00 GMT", "x" * 65):
        assert parse_http_date(hostile) is None, hostile
    clock = ApiClock(local=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    clock.observe("Wed, 25 Nov 9999 12:00:00 GMT")
    assert not clock.synced and clock.today() == dt.date(2026, 1, 1)
