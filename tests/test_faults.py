"""Fault matrix: every tool, through a real MCP session, against the sandbox's fault injection.

Idempotent tools must ride out transient faults (429 with and without Retry-After, 5xx bursts,
dropped connections, a slow upstream, malformed JSON, expired tokens, a flaky token endpoint)
and turn persistent ones into an actionable `is_error` result within a bounded time, then keep
serving. A create must never be duplicated: it is re-sent only when the API certainly did not
process it (429, 401), and otherwise the model is told how to check.

Retry back-off runs on *virtual* time (the client's sleep and the limiter's clock are shared and
advanced by the sleeps), so the matrix is fast while every wait the client asked for is recorded
and asserted; one test per failure class measures the real wall-clock bound as well.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from mcp import Client

from invoice_mcp.api.client import MAX_ATTEMPTS, APIClient
from invoice_mcp.api.ratelimit import LocalRateLimiter
from invoice_mcp.api.settings import Settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.sandbox.log import RequestRecord
from invoice_mcp.server import build_server

from .conftest import settings_for, text_of

pytestmark = pytest.mark.anyio

TIMEOUT_S = 0.5
"""AP_TIMEOUT_S for the matrix: a 'slow' upstream answers after SLOW_S, well past it."""
SLOW_S = 0.8
BUDGET_S = 20.0
"""The client's retry budget (max(20, 2 × timeout)): no failing call may wait longer."""


# -- harness -------------------------------------------------------------------------------------


@dataclass
class VirtualTime:
    """Shared by the client's back-off sleep and the limiter's clock: sleeping advances time."""

    offset: float = 0.0
    waits: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.offset += seconds
        await anyio.lowlevel.checkpoint()


class ExpireAfter(httpx.AsyncBaseTransport):
    """Real HTTP, plus: expire every sandbox token right after the k-th successful data GET."""

    def __init__(self, sb: Sandbox, k: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sb = sb
        self.k = k
        self.seen = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        if request.method == "GET" and resp.status_code == 200:
            self.seen += 1
            if self.seen == self.k:
                self.sb.faults.expire_tokens()
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Session:
    client: Client
    sb: Sandbox
    vt: VirtualTime

    async def ok(self, tool: str, args: dict[str, Any]) -> Any:
        res = await self.client.call_tool(tool, args)
        assert not res.is_error, f"{tool}: {text_of(res)}"
        assert res.structured_content is not None
        return res

    async def fails(self, tool: str, args: dict[str, Any]) -> str:
        res = await self.client.call_tool(tool, args)
        text = text_of(res)
        assert res.is_error, f"{tool} should have failed: {text[:200]}"
        assert "Traceback" not in text
        assert text.strip() != f"Error executing tool {tool}", "sanitised crash instead of an actionable error"
        return text


@asynccontextmanager
async def session(
    sb: Sandbox, *, virtual: bool = True, transport: httpx.AsyncBaseTransport | None = None, **env: str
) -> AsyncIterator[Session]:
    settings = settings_for(sb, **{"AP_TIMEOUT_S": str(TIMEOUT_S), **env})
    vt = VirtualTime()

    async def real_sleep(seconds: float) -> None:
        vt.waits.append(seconds)  # recorded, and really slept
        await anyio.sleep(seconds)

    def factory(s: Settings) -> APIClient:
        if not virtual:
            return APIClient(s, transport=transport, sleep=real_sleep)
        limiter = LocalRateLimiter(s.rate_limit, clock=vt.clock)
        return APIClient(s, transport=transport, sleep=vt.sleep, limiter=limiter)

    first = sb._app.log._seq
    async with Client(build_server(settings, client_factory=factory)) as c:
        yield Session(c, sb, vt)
    await quiescent(sb, first)


async def quiescent(sb: Sandbox, first: int) -> None:
    """Let requests still running in the sandbox (a delayed one the client gave up on) finish, so
    they are not logged into the next test after its reset. (Reads the log's arrival counter.)"""
    log = sb._app.log

    def done() -> bool:
        with log._lock:
            return sum(1 for seq, _ in log._records if seq > first) == log._seq - first

    await settled(done, limit_s=SLOW_S + 5)


async def settled(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Wait for the sandbox (another thread) to finish logging; a condition, not a fixed sleep."""
    with anyio.fail_after(limit_s):
        while not cond():  # noqa: ASYNC110 - the condition is set by the sandbox's thread, no event to await
            await anyio.sleep(0.01)


@dataclass(frozen=True)
class ToolCase:
    """A tool, arguments for its i-th call (distinct, so no cache answers), and the request to fault."""

    name: str
    args: Callable[[int], dict[str, Any]]
    method: str
    path: str

    def hits(self, sb: Sandbox) -> list[RequestRecord]:
        exact = self.path != "/invoices" and self.path != "/customers"
        return [r for r in sb.requests(self.method, self.path) if not exact or r.path == self.path]


def target_invoice(sb: Sandbox) -> dict[str, Any]:
    return next(i for i in sb.invoices(include_archived=False) if i["status"] == "open")


def tool_case(sb: Sandbox, name: str) -> ToolCase:
    inv = target_invoice(sb)
    iid, cid = inv["id"], inv["customer_id"]
    cases = {
        "list_invoices": ToolCase(
            name, lambda i: {"limit": 5, "created_at_end": f"2027-01-{i % 28 + 1:02d}"}, "GET", "/invoices"
        ),
        "get_invoice": ToolCase(name, lambda i: {"invoice": iid}, "GET", f"/invoices/{iid}"),
        "summarize_invoices": ToolCase(name, lambda i: {"customer_id": cid}, "GET", "/invoices"),
        "find_customers": ToolCase(name, lambda i: {"name": "Acme"}, "GET", "/customers"),
        "get_invoice_payment_link": ToolCase(name, lambda i: {"invoice": iid}, "GET", f"/invoices/{iid}/payment-link"),
        "get_invoice_pdf_link": ToolCase(name, lambda i: {"invoice": iid}, "GET", f"/invoices/{iid}/pdf-link"),
        "archive_invoice": ToolCase(name, lambda i: {"invoice": iid}, "DELETE", f"/invoices/{iid}"),
        "restore_invoice": ToolCase(name, lambda i: {"invoice": iid}, "POST", f"/invoices/{iid}/restore"),
    }
    return cases[name]


IDEMPOTENT = [
    "list_invoices",
    "get_invoice",
    "summarize_invoices",
    "find_customers",
    "get_invoice_payment_link",
    "get_invoice_pdf_link",
    "archive_invoice",
    "restore_invoice",
]


def arm(sb: Sandbox, kind: str, n: int, method: str | None, path: str | None) -> None:
    f = sb.faults
    match kind:
        case "429+retry-after":
            f.fail_next(n, 429, retry_after="2", method=method, path=path)
        case "429":
            f.fail_next(n, 429, method=method, path=path)
        case "500" | "502" | "503" | "504":
            f.fail_next(n, int(kind), method=method, path=path)
        case "drop":
            f.drop_next(n, method=method, path=path)
        case "malformed":
            f.malformed_next(n, method=method, path=path)
        case "slow":
            f.delay_next(n, SLOW_S, method=method, path=path)
        case _:
            raise AssertionError(kind)


# What the first failing attempts look like in the sandbox log (status 0 = connection dropped).
FIRST_STATUS = {
    "429+retry-after": 429,
    "429": 429,
    "500": 500,
    "502": 502,
    "503": 503,
    "504": 504,
    "drop": 0,
    "malformed": 200,
}

# Transient: (kind, how many consecutive failures)
TRANSIENT = [
    ("429+retry-after", 1),
    ("429", 1),
    ("500", 2),
    ("502", 2),
    ("503", 2),
    ("504", 2),
    ("drop", 1),
    ("malformed", 1),
    ("slow", 1),
]
PERSISTENT = ["429", "500", "502", "503", "504", "drop", "malformed"]
ACTIONABLE = {
    "429": "rate limited by the API; retry in",
    "500": "retry in a few seconds",
    "502": "retry in a few seconds",
    "503": "retry in a few seconds",
    "504": "retry in a few seconds",
    "drop": "retry in a few seconds",
    "malformed": "retry in a few seconds",
    "slow": "retry in a few seconds",
}


# -- idempotent tools ----------------------------------------------------------------------------


@pytest.mark.parametrize("tool", IDEMPOTENT)
@pytest.mark.slow
async def test_transient_faults_are_retried_to_success(
    sandbox: Sandbox, tool: str, record_property: Callable[[str, object], None]
) -> None:
    case = tool_case(sandbox, tool)
    tried: Counter[str] = Counter()
    async with session(sandbox) as s:
        for i, (kind, n) in enumerate(TRANSIENT):
            before = len(case.hits(sandbox))
            s.vt.waits.clear()
            arm(sandbox, kind, n, case.method, case.path)
            started = time.monotonic()
            await s.ok(tool, case.args(i))
            elapsed = time.monotonic() - started
            tried[kind] += 1
            if kind == "slow":
                # the first attempt was abandoned at AP_TIMEOUT_S (a timeout never fires early) and
                # retried after one back-off, not waited out (a waited-out attempt needs no retry)
                assert elapsed >= TIMEOUT_S * 0.9, (kind, elapsed)
                assert len(s.vt.waits) == 1, (kind, s.vt.waits)
                continue
            await settled(lambda b=before, n=n: len(case.hits(sandbox)) >= b + n + 1)
            statuses = [r.status for r in case.hits(sandbox)[before:]]
            assert statuses[: n + 1] == [FIRST_STATUS[kind]] * n + [200], (kind, statuses)
            if kind == "429+retry-after":
                assert s.vt.waits == [2.0], "Retry-After: 2 must be honoured"
            elif kind == "429":
                assert s.vt.waits == [1.0], "a 429 without Retry-After waits a default second"
            else:
                assert len(s.vt.waits) == n and all(0 <= w <= 4.0 for w in s.vt.waits), (kind, s.vt.waits)
    record_property("faults", dict(tried))


@pytest.mark.parametrize("tool", IDEMPOTENT)
@pytest.mark.slow
async def test_persistent_faults_give_actionable_error_then_server_recovers(
    sandbox: Sandbox, tool: str, record_property: Callable[[str, object], None]
) -> None:
    case = tool_case(sandbox, tool)
    tried: Counter[str] = Counter()
    async with session(sandbox) as s:
        for i, kind in enumerate(PERSISTENT):
            before = len(case.hits(sandbox))
            s.vt.waits.clear()
            arm(sandbox, kind, 50, case.method, case.path)
            text = await s.fails(tool, case.args(2 * i))
            tried[f"{kind} persistent"] += 1
            assert ACTIONABLE[kind] in text, (kind, text)
            await settled(lambda b=before: len(case.hits(sandbox)) >= b + MAX_ATTEMPTS)
            assert len(case.hits(sandbox)) - before == MAX_ATTEMPTS, f"{kind}: bounded attempts"
            assert sum(s.vt.waits) <= BUDGET_S and len(s.vt.waits) == MAX_ATTEMPTS - 1, (kind, s.vt.waits)
            sandbox.faults.clear()
            if kind == "429":  # the API asked for a pause; the model waits as it was told before calling again
                s.vt.offset += float(text.split("retry in ")[1].split(" s")[0])
            await s.ok(tool, case.args(2 * i + 1))  # the same session keeps serving
    record_property("faults", dict(tried))


@pytest.mark.parametrize("tool", IDEMPOTENT)
async def test_token_faults(sandbox: Sandbox, tool: str, record_property: Callable[[str, object], None]) -> None:
    """Token endpoint down (transient, persistent), 401 after a fresh token (once, persistent),
    expiry between calls, and 403 from the token endpoint."""
    case = tool_case(sandbox, tool)
    tried: Counter[str] = Counter()
    async with session(sandbox) as s:
        # cold start while the token endpoint is flaky
        sandbox.faults.fail_next(2, 503, path="/oauth/token")
        await s.ok(tool, case.args(0))
        assert sandbox.token_requests == 3
        tried["token endpoint 503 transient"] += 1

        # a 401 right after a fresh token: exactly one re-mint, then success
        sandbox.faults.fail_next(1, 401, method=case.method, path=case.path)
        await s.ok(tool, case.args(1))
        assert sandbox.token_requests == 4
        tried["401 once"] += 1

        # tokens keep being refused: one re-mint, then a credentials error that names the variables
        sandbox.faults.fail_next(10, 401, method=case.method, path=case.path)
        text = await s.fails(tool, case.args(2))
        assert "AP_CLIENT_ID" in text and "AP_CLIENT_SECRET" in text, text
        assert sandbox.token_requests == 5, "exactly one re-mint on a persistent 401, no loop"
        sandbox.faults.clear()
        await s.ok(tool, case.args(3))
        tried["401 persistent"] += 1

        # token expired between calls
        mints = sandbox.token_requests
        sandbox.faults.expire_tokens()
        await s.ok(tool, case.args(4))
        assert sandbox.token_requests == mints + 1
        tried["token expiry between calls"] += 1

        # token endpoint down for good while a re-mint is needed
        sandbox.faults.expire_tokens()
        sandbox.faults.fail_next(50, 503, path="/oauth/token")
        text = await s.fails(tool, case.args(5))
        assert "token request" in text and "retry in a few seconds" in text, text
        sandbox.faults.clear()
        await s.ok(tool, case.args(6))
        tried["token endpoint 503 persistent"] += 1

        # the token endpoint refuses the credentials
        sandbox.faults.expire_tokens()
        sandbox.faults.fail_next(1, 403, path="/oauth/token")
        text = await s.fails(tool, case.args(7))
        assert "credentials" in text and "AP_CLIENT_ID" in text and "AP_CLIENT_SECRET" in text, text
        await s.ok(tool, case.args(8))
        tried["token endpoint 403"] += 1
    record_property("faults", dict(tried))


async def test_wrong_secret_is_a_credentials_error(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    async with session(sandbox, AP_CLIENT_SECRET="not-the-secret") as s:
        for tool in IDEMPOTENT:
            text = await s.fails(tool, tool_case(sandbox, tool).args(0))
            assert "AP_CLIENT_ID" in text and "AP_CLIENT_SECRET" in text and "retrying will not help" in text
            assert "not-the-secret" not in text
    assert not [r for r in sandbox.requests() if r.path != "/oauth/token"], "no data request without a token"
    record_property("faults", {"wrong secret (403)": len(IDEMPOTENT)})


# -- real wall-clock bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "bound"),
    [("503", 0.5 + 1 + 2 + 1.5), ("slow", MAX_ATTEMPTS * TIMEOUT_S + 0.5 + 1 + 2 + 1.5)],
)
@pytest.mark.slow
async def test_persistent_failure_is_bounded_in_real_time(
    sandbox: Sandbox, kind: str, bound: float, record_property: Callable[[str, object], None]
) -> None:
    case = tool_case(sandbox, "get_invoice")
    async with session(sandbox, virtual=False) as s:
        await s.ok("get_invoice", case.args(0))
        arm(sandbox, kind, 50, case.method, case.path)
        s.vt.waits.clear()
        started = time.monotonic()
        text = await s.fails("get_invoice", case.args(1))
        elapsed = time.monotonic() - started  # reported, not asserted: a busy machine only adds to it
        assert ACTIONABLE[kind] in text
        # The client's own plan: the back-off it slept plus, for a hung upstream, one timeout per attempt.
        planned = sum(s.vt.waits) + (MAX_ATTEMPTS * TIMEOUT_S if kind == "slow" else 0.0)
        assert len(s.vt.waits) == MAX_ATTEMPTS - 1 and planned < bound, f"{kind}: planned {planned:.2f}s"
        sandbox.faults.clear()
        await s.ok("get_invoice", case.args(2))
    record_property("faults", {f"{kind} persistent (real time)": 1})
    record_property("give_up_s", {kind: round(elapsed, 2)})


# -- token expiry in the middle of multi-request work -------------------------------------------


@pytest.mark.slow
async def test_token_expiry_between_chunks_of_a_cursor_walk(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    expected = [i["invoice_number"] for i in sandbox.invoices(include_archived=False)]
    ids: list[str] = []
    async with session(sandbox) as s:
        cursor = None
        chunks = 0
        while True:
            res = await s.ok("list_invoices", {"limit": 100, **({"cursor": cursor} if cursor else {})})
            ids += [row[0] for row in res.structured_content["rows"]]
            chunks += 1
            cursor = res.structured_content.get("next_cursor")
            if not cursor:
                break
            sandbox.faults.expire_tokens()
    assert ids == expected, "the walk survives expiry: nothing lost, nothing repeated"
    assert chunks >= 3 and sandbox.token_requests == chunks
    statuses = [r.status for r in sandbox.requests("GET", "/invoices")]
    assert statuses == [200] + [401, 200] * (chunks - 1)
    record_property("faults", {"token expiry mid cursor walk": chunks - 1})


async def test_token_expiry_inside_a_chunk_of_a_cursor_walk(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    """Chunks of 60 straddle the API's pages of 100: the token dies after the first page (and the
    customer directory), so the second chunk serves 40 rows from the cached page and meets the 401
    on the next one, in the middle of the chunk."""
    expected = [i["invoice_number"] for i in sandbox.invoices(include_archived=False)]
    ids: list[str] = []
    async with session(sandbox, transport=ExpireAfter(sandbox, k=2)) as s:
        cursor = None
        while True:
            res = await s.ok("list_invoices", {"limit": 60, **({"cursor": cursor} if cursor else {})})
            ids += [row[0] for row in res.structured_content["rows"]]
            cursor = res.structured_content.get("next_cursor")
            if not cursor:
                break
    assert ids == expected
    assert sandbox.token_requests == 2
    # The 401 lands on the data requests in flight after the first page (an invoice page, or the
    # payments of partly paid rows, which list rows read for their balance, a few at a time): each is
    # re-sent once after the one re-mint (token_requests == 2 above), and succeeds.
    data = [r for r in sandbox.requests("GET") if r.path in ("/invoices", "/payments")]
    statuses = [r.status for r in data]
    assert statuses[0] == 200 and 1 <= statuses.count(401) <= 9  # at most the fetches in flight, plus one
    first = statuses.index(401)
    refused = [r for r in data if r.status == 401]
    assert all(r.status in (200, 401) for r in data)
    for r in refused:
        assert any(o.status == 200 and o.path == r.path and dict(o.query) == dict(r.query) for o in data[first:])
    assert 401 not in statuses[first + len(refused) + 8 :]  # no refusal once the new token is in use
    record_property("faults", {"token expiry mid chunk": 1})


async def test_token_expiry_inside_a_summary(sandbox: Sandbox, record_property: Callable[[str, object], None]) -> None:
    visible = sandbox.invoices(include_archived=False)
    async with session(sandbox, transport=ExpireAfter(sandbox, k=1)) as s:
        res = await s.ok("summarize_invoices", {})
        summary = res.structured_content
        assert summary["count"] == len(visible) and not summary["truncated"]
        assert Decimal(repr(summary["total"])) == sum((Decimal(str(i["total"])) for i in visible), Decimal("0"))
        assert sandbox.token_requests == 2
        pages = [r.status for r in sandbox.requests("GET", "/invoices") if r.path == "/invoices"]
        assert pages[:3] == [200, 401, 200] and set(pages[3:]) == {200}
        # and between two summaries
        sandbox.faults.expire_tokens()
        again = await s.ok("summarize_invoices", {})
        assert again.structured_content["count"] == summary["count"]
        assert sandbox.token_requests == 3
    record_property("faults", {"token expiry mid summary": 1, "token expiry between summaries": 1})


# -- create_invoice: never duplicated -----------------------------------------------------------


def new_invoice_args(sb: Sandbox) -> dict[str, Any]:
    return {
        "customer_id": sb.customers()[0]["id"],
        "due_date": "2026-12-01",
        "line_items": [{"description": "Fault-test seats", "amount": 12.5, "quantity": 12}],
    }


def created(sb: Sandbox) -> list[dict[str, Any]]:
    return [i for i in sb.invoices() if i["line_items"][0]["description"] == "Fault-test seats"]


def posts(sb: Sandbox) -> list[RequestRecord]:
    return [r for r in sb.requests("POST", "/invoices") if r.path == "/invoices"]


def assert_ambiguous(text: str, customer_id: str) -> None:
    assert "may have been created" in text and "Do not retry" in text, text
    assert f"list_invoices(customer_id={customer_id!r}, created_at_start=" in text, text


async def follow_up(s: Session, customer_id: str) -> None:
    await s.ok("list_invoices", {"customer_id": customer_id, "limit": 5})


@pytest.mark.parametrize("retry_after", ["1", None])
async def test_create_after_429_is_retried_and_created_once(
    sandbox: Sandbox, retry_after: str | None, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.fail_next(1, 429, retry_after=retry_after, method="POST", path="/invoices")
        res = await s.ok("create_invoice", args)
        assert res.structured_content["outcome"] == "created"
        assert s.vt.waits == [1.0]
        await follow_up(s, args["customer_id"])
    assert [p.status for p in posts(sandbox)] == [429, 201]
    assert len(created(sandbox)) == 1
    record_property("faults", {"create 429": 1})


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_create_after_5xx_is_not_resent(
    sandbox: Sandbox, status: int, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.fail_next(5, status, method="POST", path="/invoices")
        text = await s.fails("create_invoice", args)
        assert_ambiguous(text, args["customer_id"])
        assert f"answered {status}" in text
        sandbox.faults.clear()
        await follow_up(s, args["customer_id"])
    assert [p.status for p in posts(sandbox)] == [status], "never re-sent"
    assert created(sandbox) == []
    record_property("faults", {f"create {status}": 1})


async def test_create_dropped_after_processing_is_not_resent_and_can_be_found(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.drop_next(1, method="POST", path="/invoices", after_processing=True)
        text = await s.fails("create_invoice", args)
        assert_ambiguous(text, args["customer_id"])
        await settled(lambda: len(posts(sandbox)) >= 1)
        assert len(posts(sandbox)) == 1, "exactly one POST reached the API"
        assert len(created(sandbox)) == 1, "it was created, once"
        # following the advice in the message finds it
        start = text.split("created_at_start=")[1].split("'")[1]
        found = await s.ok("list_invoices", {"customer_id": args["customer_id"], "created_at_start": start})
        ids = [row[0] for row in found.structured_content["rows"]]
        assert created(sandbox)[0]["invoice_number"] in ids
    assert len(posts(sandbox)) == 1
    record_property("faults", {"create drop after processing": 1})


async def test_create_dropped_before_processing_is_ambiguous_not_resent(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.drop_next(1, method="POST", path="/invoices")
        text = await s.fails("create_invoice", args)
        assert_ambiguous(text, args["customer_id"])
        await follow_up(s, args["customer_id"])
    await settled(lambda: len(posts(sandbox)) >= 1)
    assert len(posts(sandbox)) == 1 and created(sandbox) == []
    record_property("faults", {"create drop": 1})


async def test_create_with_malformed_answer_is_ambiguous_not_resent(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.malformed_next(1, method="POST", path="/invoices")
        text = await s.fails("create_invoice", args)
        assert_ambiguous(text, args["customer_id"])
        await follow_up(s, args["customer_id"])
    assert len(posts(sandbox)) == 1
    record_property("faults", {"create malformed": 1})


@pytest.mark.slow
async def test_create_slower_than_timeout_is_ambiguous_not_resent(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.delay_next(1, SLOW_S, method="POST", path="/invoices")
        text = await s.fails("create_invoice", args)
        assert_ambiguous(text, args["customer_id"])
        await follow_up(s, args["customer_id"])
        # the slow request completes upstream after the client gave up: one POST, one invoice
        await settled(lambda: len(created(sandbox)) >= 1 and len(posts(sandbox)) >= 1)
    assert len(posts(sandbox)) == 1 and len(created(sandbox)) == 1
    record_property("faults", {"create slow": 1})


async def test_create_after_401_is_reminted_and_created_once(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.fail_next(1, 401, method="POST", path="/invoices")
        await s.ok("create_invoice", args)
    assert [p.status for p in posts(sandbox)] == [401, 201]
    assert len({p.token for p in posts(sandbox)}) == 2 and sandbox.token_requests == 2
    assert len(created(sandbox)) == 1
    record_property("faults", {"create 401": 1})


async def test_create_with_token_endpoint_down_sends_nothing(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    args = new_invoice_args(sandbox)
    async with session(sandbox) as s:
        sandbox.faults.fail_next(50, 503, path="/oauth/token")
        text = await s.fails("create_invoice", args)
        assert "token request" in text and "retry in a few seconds" in text
        sandbox.faults.clear()
        await follow_up(s, args["customer_id"])
    assert posts(sandbox) == [] and created(sandbox) == []
    record_property("faults", {"create token endpoint down": 1})
