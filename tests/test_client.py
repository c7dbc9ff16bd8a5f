"""API client against the sandbox over real HTTP: tokens, paging, encoding, retries, pacing."""

from __future__ import annotations

import itertools
import logging
from decimal import Decimal

import anyio
import httpx
import pytest

from invoice_mcp.api.client import APIClient, absolute_https
from invoice_mcp.api.errors import AmbiguousWriteError, CredentialsError, NotFoundError, UpstreamError
from invoice_mcp.api.models import NewInvoice, NewLineItem
from invoice_mcp.api.ratelimit import LocalRateLimiter
from invoice_mcp.api.settings import Settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.service.paging import walk

from .conftest import new_sandbox, settings_for

pytestmark = pytest.mark.anyio


def fast(sb: Sandbox, **env: str) -> APIClient:
    return APIClient(settings_for(sb, **env), sleep=lambda s: anyio.sleep(min(s, 0.01)))


async def test_token_reused_across_calls(sandbox: Sandbox) -> None:
    async with fast(sandbox) as c:
        for _ in range(5):
            await c.list_invoices(limit=1)
    assert sandbox.token_requests == 1
    tokens = {r.token for r in sandbox.requests(path_prefix="/invoices")}
    assert len(tokens) == 1


async def test_fifty_concurrent_cold_calls_mint_one_token(sandbox: Sandbox) -> None:
    async with fast(sandbox) as c, anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(lambda: c.list_invoices(limit=1))
    assert sandbox.token_requests == 1
    assert len(sandbox.requests(path_prefix="/invoices")) == 50


async def test_token_request_is_basic_auth_form(sandbox: Sandbox) -> None:
    async with fast(sandbox) as c:
        await c.list_invoices(limit=1)
    tok = sandbox.requests(path_prefix="/oauth/token")[0]
    assert tok.method == "POST" and tok.auth == "basic"
    assert tok.body == b"grant_type=client_credentials"


async def test_expired_token_is_reminted_once(sandbox: Sandbox) -> None:
    async with fast(sandbox) as c:
        await c.list_invoices(limit=1)
        sandbox.faults.expire_tokens()
        page = await c.list_invoices(limit=1)
    assert page.data
    assert sandbox.token_requests == 2
    statuses = [r.status for r in sandbox.requests(path_prefix="/invoices")]
    assert statuses == [200, 401, 200]


async def test_persistent_401_is_a_credentials_error_not_a_loop(sandbox: Sandbox) -> None:
    sandbox.faults.fail_next(10, 401, path="/invoices")
    async with fast(sandbox) as c:
        with pytest.raises(CredentialsError) as err:
            await c.list_invoices(limit=1)
    assert "AP_CLIENT_ID" in str(err.value)
    assert sandbox.token_requests == 2  # first token + exactly one re-mint
    assert len(sandbox.requests(path_prefix="/invoices")) == 2


async def test_wrong_secret_gives_clear_403_error_without_secret(sandbox: Sandbox) -> None:
    secret = "definitely-wrong-secret-123"
    async with fast(sandbox, AP_CLIENT_SECRET=secret) as c:
        with pytest.raises(CredentialsError) as err:
            await c.list_invoices(limit=1)
    msg = str(err.value)
    assert "AP_CLIENT_SECRET" in msg and "403" in msg
    assert secret not in msg and secret not in repr(err.value)
    assert sandbox.token_requests == 1


def oracle_ids(sb: Sandbox, **where: str) -> list[str]:
    rows = sb.invoices(include_archived=where.get("status") == "archived")
    out = []
    for inv in rows:
        if where.get("status") and inv["status"] != where["status"]:
            continue
        if where.get("customer_id") and inv["customer_id"] != where["customer_id"]:
            continue
        if where.get("status") != "archived" and inv["status"] == "archived":
            continue
        out.append(inv["id"])
    return out


@pytest.mark.parametrize("filters", [{}, {"status": "paid"}, {"status": "overdue"}, {"status": "archived"}, "customer"])
async def test_complete_traversal_with_filters(sandbox: Sandbox, filters: object) -> None:
    where: dict[str, str] = {}
    if filters == "customer":
        where["customer_id"] = sandbox.customers()[0]["id"]
    else:
        assert isinstance(filters, dict)
        where.update(filters)
    async with fast(sandbox) as c:
        ids = [inv.id async for page in walk(lambda after: c.list_invoices(after=after, **where)) for inv in page.data]
    expected = oracle_ids(sandbox, **where)
    assert expected and ids == expected


async def test_date_filters_are_sent_as_given(sandbox: Sandbox) -> None:
    async with fast(sandbox) as c:
        page = await c.list_invoices(
            created_at_start="2026-01-01T00:00:00Z", due_date_end="2026-06-30T23:59:59Z", limit=100
        )
    q = sandbox.requests(path_prefix="/invoices")[-1].query
    assert q["created_at_start"] == "2026-01-01T00:00:00Z" and q["due_date_end"] == "2026-06-30T23:59:59Z"
    assert all(i.created_at and i.created_at >= "2026-01-01" for i in page.data)
    assert all(i.due_date and i.due_date[:10] <= "2026-06-30" for i in page.data)


async def test_cursors_with_plus_slash_equals_are_percent_encoded(sandbox: Sandbox) -> None:
    async with fast(sandbox) as c:
        first = await c.list_invoices(limit=5)
        assert first.end_cursor and any(ch in first.end_cursor for ch in "+/=")
        second = await c.list_invoices(limit=5, after=first.end_cursor)
    raw = sandbox.requests(path_prefix="/invoices")[-1].raw_query
    assert "+" not in raw and ("%2B" in raw or "%2F" in raw or "%3D" in raw)
    ids = [i["id"] for i in sandbox.invoices(include_archived=False)]
    assert [i.id for i in first.data + second.data] == ids[:10]


async def test_odd_id_is_one_escaped_path_segment(sandbox: Sandbox) -> None:
    async with fast(sandbox) as c:
        for odd in ("a/b", "x?y=1", "p#q", "100%", "sp ace"):
            with pytest.raises(NotFoundError):
                await c.get_invoice(odd)
        with pytest.raises(Exception, match="invalid"):
            await c.get_invoice("..")
    paths = [r.raw_path for r in sandbox.requests(method="GET", path_prefix="/invoices")]
    assert paths == [
        "/invoices/a%2Fb",
        "/invoices/x%3Fy%3D1",
        "/invoices/p%23q",
        "/invoices/100%25",
        "/invoices/sp%20ace",
    ]


@pytest.mark.parametrize("status", [429, 503, 502, 504, 500])
@pytest.mark.slow
async def test_get_retried_on_transient_status(sandbox: Sandbox, status: int) -> None:
    sandbox.faults.fail_next(2, status, path="/invoices")
    async with fast(sandbox) as c:
        page = await c.list_invoices(limit=1)
    assert page.data
    assert [r.status for r in sandbox.requests(path_prefix="/invoices")] == [status, status, 200]


@pytest.mark.slow
async def test_retry_after_is_honoured(sandbox: Sandbox) -> None:
    waits: list[float] = []

    async def record(s: float) -> None:
        waits.append(s)

    sandbox.faults.fail_next(1, 429, retry_after="2", path="/invoices")
    async with APIClient(settings_for(sandbox), sleep=record) as c:
        await c.list_invoices(limit=1)
    assert waits == [2.0]


async def test_get_retried_after_dropped_connection_and_malformed_body(sandbox: Sandbox) -> None:
    sandbox.faults.drop_next(1, path="/invoices")
    sandbox.faults.malformed_next(1, path="/invoices")
    async with fast(sandbox) as c:
        page = await c.list_invoices(limit=2)
    assert len(page.data) == 2
    assert len(sandbox.requests(path_prefix="/invoices")) == 3


async def test_persistent_5xx_gives_up_bounded(sandbox: Sandbox) -> None:
    sandbox.faults.fail_next(100, 503, path="/invoices")
    async with fast(sandbox) as c:
        with pytest.raises(UpstreamError):
            await c.list_invoices(limit=1)
    assert len(sandbox.requests(path_prefix="/invoices")) == 4


def new_invoice(sb: Sandbox) -> NewInvoice:
    return NewInvoice(
        customer_id=sb.customers()[0]["id"],
        due_date="2026-12-01",
        line_items=[NewLineItem(description="Seats", amount=Decimal("12.50"), quantity=12)],
    )


async def test_create_not_resent_after_dropped_connection(sandbox: Sandbox) -> None:
    sandbox.faults.drop_next(1, method="POST", path="/invoices", after_processing=True)
    async with fast(sandbox) as c:
        with pytest.raises(AmbiguousWriteError):
            await c.create_invoice(new_invoice(sandbox))
    assert len(sandbox.requests(method="POST", path_prefix="/invoices")) == 1
    created = [i for i in sandbox.invoices() if i.get("due_date") == "2026-12-01" and i["total"] == 150]
    assert len(created) == 1  # it did happen once, and only once


async def test_create_not_resent_after_503(sandbox: Sandbox) -> None:
    sandbox.faults.fail_next(1, 503, method="POST", path="/invoices")
    async with fast(sandbox) as c:
        with pytest.raises(AmbiguousWriteError):
            await c.create_invoice(new_invoice(sandbox))
    assert len(sandbox.requests(method="POST", path_prefix="/invoices")) == 1


@pytest.mark.slow
async def test_create_retried_on_429_and_created_once(sandbox: Sandbox) -> None:
    sandbox.faults.fail_next(1, 429, method="POST", path="/invoices")
    async with fast(sandbox) as c:
        inv = await c.create_invoice(new_invoice(sandbox))
    assert inv.total == Decimal("150") and inv.status == "open"
    posts = sandbox.requests(method="POST", path_prefix="/invoices")
    assert [p.status for p in posts] == [429, 201]


class RecordingLimiter(LocalRateLimiter):
    """The limiter's own schedule: every slot it hands out."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.slots: list[float] = []

    def take(self) -> float:
        slot = super().take()
        self.slots.append(slot)
        return slot


@pytest.mark.slow
async def test_limiter_holds_rate_across_concurrent_callers() -> None:
    """Asserted on the limiter's schedule and the sandbox's request log, never on gaps measured
    between requests (connection set-up and a busy machine only ever delay a request)."""
    sb = new_sandbox(rate_limit=5.0)
    sb.start()
    try:
        limiter = RecordingLimiter(5)
        async with APIClient(settings_for(sb), limiter=limiter) as c, anyio.create_task_group() as tg:
            for _ in range(11):
                tg.start_soon(lambda: c.list_invoices(limit=1))
        log = sb.requests()
        assert len(log) == 12 and all(r.status != 429 for r in log)  # 1 token + 11 lists, none refused
        slots = sorted(limiter.slots)
        assert len(slots) == 12
        # Never closer than 1/rate (a slow token request may only push the first list later), and
        # the lists themselves evenly spread: they were all waiting.
        gaps = [b - a for a, b in itertools.pairwise(slots)]
        assert all(g >= 0.2 - 1e-6 for g in gaps)
        assert gaps[1:] == pytest.approx([0.2] * 10)
        # No request left before its slot: the k-th arrival is no earlier than the k-th slot.
        for slot, arrived in zip(slots, sorted(r.t for r in log), strict=True):
            assert arrived >= slot
    finally:
        sb.stop()


def test_local_limiter_spaces_slots_evenly() -> None:
    now = [100.0]
    lim = LocalRateLimiter(5, clock=lambda: now[0])
    waits = [lim.reserve() for _ in range(6)]
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


async def test_unknown_status_and_extra_fields_survive() -> None:
    body = (
        b'{"data":[{"id":"inv_1","status":"disputed","total":10.1,"sub_total":10.1,"brand_new":{"x":1},'
        b'"line_items":[{"amount":0.1,"quantity":3,"description":"d","extra":true}]}],'
        b'"end_cursor":"","has_next_page":false,"has_previous_page":false,"start_cursor":"","new_top":1}'
    )

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.headers["user-agent"].startswith("invoice-mcp/")
        if req.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600, "token_type": "Bearer"})
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    s = Settings(client_id="id", client_secret="s", base_url="http://api.test")  # type: ignore[arg-type]
    async with APIClient(s, transport=httpx.MockTransport(handler)) as c:
        page = await c.list_invoices()
    inv = page.data[0]
    assert inv.status == "disputed"
    assert inv.total == Decimal("10.1")
    assert inv.line_items and inv.line_items[0].amount == Decimal("0.1")
    assert sum((li.amount or 0) * (li.quantity or 0) for li in inv.line_items) == Decimal("0.3")


async def test_payment_link_gets_https_scheme(sandbox: Sandbox) -> None:
    inv_id = sandbox.invoices(include_archived=False)[0]["id"]
    async with fast(sandbox) as c:
        link = await c.get_payment_link(inv_id)
    assert link.url and link.url.startswith("https://pay.")
    assert absolute_https("//x.example/p") == "https://x.example/p"
    assert absolute_https("http://x.example/p") == "http://x.example/p"


async def test_secret_and_tokens_not_logged(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with fast(sandbox) as c:
        await c.list_invoices(limit=1)
        sandbox.faults.fail_next(1, 503, path="/invoices")
        await c.list_invoices(limit=1)
    text = caplog.text
    assert sandbox.config.client_secret not in text
    for tok in sandbox.issued_tokens:
        assert tok not in text
