"""The one single-flight cache (service/cache.py) and the one pager guard (service/paging.py):
a burst of identical loads costs one upstream request, counted in the sandbox's request log, for
every cache that uses it; pagination that hands back a cursor it already gave is stopped, by
every walk, with the same words."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from invoice_mcp.api.client import APIClient
from invoice_mcp.api.models import Invoice, Page
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.service import InvoiceService
from invoice_mcp.service.cache import SingleFlightCache
from invoice_mcp.service.errors import RunawayUpstream
from invoice_mcp.service.paging import PageTrail, next_after, next_before, walk
from invoice_mcp.service.query import InvoiceQuery, PaymentQuery

from ..conftest import settings_for

pytestmark = pytest.mark.anyio

BURST = 20


async def test_concurrent_misses_share_one_load_and_a_failed_load_is_not_kept() -> None:
    cache: SingleFlightCache[str, int] = SingleFlightCache(8, 60.0)
    release = anyio.Event()
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return 7

    got: list[int] = []

    async def one() -> None:
        got.append(await cache.get("k", load))

    async with anyio.create_task_group() as tg:
        for _ in range(BURST):
            tg.start_soon(one)
        while cache.waiting("k") != BURST - 1:
            await anyio.lowlevel.checkpoint()
        release.set()
    assert (loads, got, cache.loading) == (1, [7] * BURST, 0)

    async def broken() -> int:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError):
        await cache.get("other", broken)
    assert await cache.get("other", load) == 7 and loads == 2  # tried again, then kept


async def _burst(call: Any) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(BURST):
            tg.start_soon(call)


async def test_every_cache_turns_a_burst_into_one_upstream_request(sandbox: Sandbox) -> None:
    async with APIClient(settings_for(sandbox)) as client:
        svc = InvoiceService(client, cursor_key=b"k" * 32)
        await svc.api_today()  # the token and the clock first: only the loads themselves are counted
        invoice = sandbox.invoices()[0]["id"]
        sandbox.clear_log()

        async def directory() -> None:
            await svc.customer_directory()

        async def payments_of() -> None:
            await svc.payments.of_invoice(invoice)

        async def invoice_page() -> None:
            await svc.chunks.page({"status": "paid"}, "after", None)

        async def payment_list() -> None:
            await svc.list_payments(PaymentQuery(status="failed"), 5, None)

        for call, path, params in (
            (directory, "/customers", {}),
            (payments_of, "/payments", {"invoice_id": invoice}),
            (invoice_page, "/invoices", {"status": "paid"}),
            (payment_list, "/payments", {"status": "failed"}),
        ):
            await _burst(call)
            asked = [r for r in sandbox.requests("GET", path) if params.items() <= r.query.items()]
            assert len(asked) == 1, (path, params, len(asked))


async def test_a_burst_of_identical_list_calls_reads_each_page_once(sandbox: Sandbox) -> None:
    async with APIClient(settings_for(sandbox)) as client:
        svc = InvoiceService(client, cursor_key=b"k" * 32)
        await svc.api_today()
        sandbox.clear_log()

        async def listing() -> None:
            await svc.list_invoices(InvoiceQuery(status="open"), 25, None)

        await _burst(listing)
        assert len(sandbox.requests("GET", "/invoices")) == 1
        assert len(sandbox.requests("GET", "/customers")) == 1  # the names of the rows: one directory load


# -- the runaway guard, written once ----------------------------------------------------------


def _page(cursor: str, **kw: Any) -> Page[Invoice]:
    return Page[Invoice](data=[Invoice(id="x")], start_cursor=cursor, end_cursor=cursor, **kw)


def test_a_trail_refuses_a_cursor_it_already_followed_in_either_direction() -> None:
    forward = PageTrail(start="c0")
    assert next_after(_page("c1", has_next_page=True), forward) == "c1"
    with pytest.raises(RunawayUpstream, match="same page cursor twice"):
        next_after(_page("c1", has_next_page=True), forward)
    with pytest.raises(RunawayUpstream, match="same page cursor twice"):
        next_after(_page("c0", has_next_page=True), PageTrail(start="c0"))  # back to where it started
    backward = PageTrail(backwards=True)
    assert next_before(_page("b1", has_previous_page=True), backward) == "b1"
    with pytest.raises(RunawayUpstream, match="going backwards"):
        next_before(_page("b1", has_previous_page=True), backward)


def test_the_end_of_a_list_is_not_a_repeat() -> None:
    trail = PageTrail(start="c0")
    assert next_after(_page("c0", has_next_page=False), trail) is None
    assert next_before(_page("c0", has_previous_page=False), PageTrail(backwards=True)) is None
    fetched_before = Page[Invoice](data=[], start_cursor="s", end_cursor=None)
    assert next_after(fetched_before, trail, fetched_before=True) is None


async def test_the_plain_walk_stops_a_runaway_with_the_same_guard() -> None:
    asked: list[str | None] = []

    async def fetch(after: str | None) -> Page[Invoice]:
        asked.append(after)
        return _page("same", has_next_page=True)

    with pytest.raises(RunawayUpstream, match="same page cursor twice"):
        async for _ in walk(fetch):
            pass
    assert asked == [None, "same"]
