"""Gateway mode end to end: a real `invoice-mcp --transport http --gateway` process, the SDK
client over HTTP with per-request credential headers, a multi-tenant sandbox behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, PromptReference

from invoice_mcp.logs import RedactingFilter
from invoice_mcp.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, TenantConfig
from invoice_mcp.server.gateway import CLIENT_ID_HEADER, CLIENT_SECRET_HEADER, ENVIRONMENT_HEADER

from ..conftest import new_sandbox, text_of
from ..procs import HTTPServer, api_env, http_servers, run_cli

pytestmark = pytest.mark.slow

TOKEN = "gateway-token-8c1d0f5e2a7b"
A = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
TENANTS = tuple(TenantConfig.numbered(k) for k in range(1, 6))
B, C, D, E, F = ((t.client_id, t.client_secret) for t in TENANTS)


def gateway_env(sb: Sandbox, **extra: str) -> dict[str, str]:
    return api_env(
        sb,
        **{
            "AP_CLIENT_ID": "",
            "AP_CLIENT_SECRET": "",
            "INVOICE_MCP_GATEWAY": "1",
            "INVOICE_MCP_HTTP_TOKEN": TOKEN,
            **extra,
        },
    )


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """Six tenants; never reset, so the gateway's cached tokens stay valid across tests."""
    with new_sandbox(tenants=TENANTS) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def gateway(sb: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPServer]:
    with http_servers((gateway_env(sb), ("--log-level", "DEBUG")), cwd=tmp_path_factory.mktemp("gw")) as (server,):
        yield server


def headers_for(creds: tuple[str, str] | None, **extra: str) -> dict[str, str]:
    h = {"Authorization": f"Bearer {TOKEN}", **extra}
    if creds is not None:
        h[CLIENT_ID_HEADER], h[CLIENT_SECRET_HEADER] = creds
    return h


@asynccontextmanager
async def connect(server: HTTPServer, headers: dict[str, str], mode: Any = "auto", **kw: Any) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(server.url, http_client=http), mode=mode, **kw) as client,
    ):
        yield client


async def call(server: HTTPServer, creds: tuple[str, str] | None, tool: str, args: dict[str, Any]) -> CallToolResult:
    async with connect(server, headers_for(creds)) as client:
        return await client.call_tool(tool, args)


def ids(r: CallToolResult) -> list[str]:
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    # number|total (tenants share numbers); totals compared as amounts (a list cell writes 1386.0 as 1386)
    return [f"{row[0]}|{Decimal(str(row[3])).normalize()}" for row in r.structured_content["rows"]]


def oracle(sb: Sandbox, creds: tuple[str, str], n: int, **match: str) -> list[str]:
    tenant = None if creds == A else creds[0]
    rows = [i for i in sb.invoices(include_archived=False, tenant=tenant) if all(i[k] == v for k, v in match.items())]
    return [f"{i['invoice_number']}|{Decimal(str(i['total'])).normalize()}" for i in rows[:n]]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_each_tenant_sees_only_its_own(gateway: HTTPServer, sb: Sandbox, mode: Any) -> None:
    """Identical filters back to back, one session per tenant kept open and interleaved."""
    args = {"limit": 5, "status": "open"}
    async with connect(gateway, headers_for(A), mode) as a, connect(gateway, headers_for(B), mode) as b:
        seen = [ids(await a.call_tool("list_invoices", args)), ids(await b.call_tool("list_invoices", args))]
        seen.append(ids(await a.call_tool("list_invoices", args)))
        sa = await a.call_tool("summarize_invoices", {})
        sb_ = await b.call_tool("summarize_invoices", {})
    assert seen[0] == seen[2] == oracle(sb, A, 5, status="open")
    assert seen[1] == oracle(sb, B, 5, status="open")
    assert not set(seen[0]) & set(seen[1])
    assert sa.structured_content is not None and sb_.structured_content is not None
    assert sa.structured_content != sb_.structured_content


@pytest.mark.anyio
async def test_headers_count_per_http_request_in_the_sessionless_era(gateway: HTTPServer, sb: Sandbox) -> None:
    """2026-07-28 has no sessions: the headers of each HTTP request decide."""
    async with (
        httpx2.AsyncClient(headers=headers_for(A)) as http,
        Client(streamable_http_client(gateway.url, http_client=http), mode="auto") as client,
    ):
        first = ids(await client.call_tool("list_invoices", {"limit": 3}))
        http.headers[CLIENT_ID_HEADER], http.headers[CLIENT_SECRET_HEADER] = B
        second = ids(await client.call_tool("list_invoices", {"limit": 3}))
    assert first == oracle(sb, A, 3) and second == oracle(sb, B, 3)


@pytest.mark.anyio
async def test_a_legacy_session_refuses_other_credentials(gateway: HTTPServer, sb: Sandbox) -> None:
    """A 2025-11-25 session belongs to the credentials that opened it: switching them mid-session
    is 'Session not found'."""
    async with (
        httpx2.AsyncClient(headers=headers_for(A)) as http,
        Client(streamable_http_client(gateway.url, http_client=http), mode="legacy") as client,
    ):
        assert ids(await client.call_tool("list_invoices", {"limit": 3})) == oracle(sb, A, 3)
        http.headers[CLIENT_ID_HEADER], http.headers[CLIENT_SECRET_HEADER] = B
        with pytest.raises(MCPError, match="Session not found"):
            await client.call_tool("list_invoices", {"limit": 3})
        http.headers[CLIENT_ID_HEADER], http.headers[CLIENT_SECRET_HEADER] = A
        assert ids(await client.call_tool("list_invoices", {"limit": 3})) == oracle(sb, A, 3)


@pytest.mark.anyio
async def test_wrong_secret_refused_while_token_cached(gateway: HTTPServer, sb: Sandbox) -> None:
    good = await call(gateway, C, "list_invoices", {"limit": 2})
    assert ids(good) == oracle(sb, C, 2)
    before = len(sb.requests())
    wrong = (C[0], C[1] + "-wrong")
    bad = await call(gateway, wrong, "list_invoices", {"limit": 2})
    assert bad.is_error
    text = text_of(bad)
    assert "credentials problem" in text and CLIENT_SECRET_HEADER.removeprefix("X-Alternative-Payments") in text
    assert wrong[1] not in text and C[1] not in text
    after = sb.requests()[before:]
    # The wrong secret asked for its own token (refused) and read nothing with C's cached token.
    assert [(r.method, r.path, r.status) for r in after] == [("POST", "/oauth/token", 403)]
    again = await call(gateway, C, "list_invoices", {"limit": 2})
    assert ids(again) == oracle(sb, C, 2)


@pytest.mark.anyio
async def test_cursor_of_one_tenant_refused_by_another(gateway: HTTPServer, sb: Sandbox) -> None:
    first = await call(gateway, A, "list_invoices", {"limit": 2})
    assert first.structured_content is not None
    cursor = first.structured_content["next_cursor"]
    assert cursor
    other = await call(gateway, B, "list_invoices", {"limit": 2, "cursor": cursor})
    assert other.is_error, text_of(other)
    assert "cursor" in text_of(other).lower()
    assert not set(oracle(sb, A, 300)) & set(text_of(other).split())
    same = await call(gateway, A, "list_invoices", {"limit": 2, "cursor": cursor})
    assert ids(same) == oracle(sb, A, 4)[2:]


@pytest.mark.anyio
async def test_one_token_request_per_tenant_for_many_calls(gateway: HTTPServer, sb: Sandbox) -> None:
    """D and E are fresh tenants; 12 calls in new sessions, interleaved, some concurrent."""
    assert sb.token_requests_for(D[0]) == sb.token_requests_for(E[0]) == 0
    for status in ("open", "paid", "overdue"):  # distinct filters: no page-cache hits
        for creds in (D, E):
            assert not (await call(gateway, creds, "list_invoices", {"limit": 1, "status": status})).is_error
    async with anyio.create_task_group() as tg:
        for creds in (D, E, D, E, D, E):
            tg.start_soon(call, gateway, creds, "find_customers", {"name": "a"})
    assert sb.token_requests_for(D[0]) == 1
    assert sb.token_requests_for(E[0]) == 1
    for creds in (D, E):
        reads = [r for r in sb.requests(tenant=creds[0]) if r.auth == "bearer"]
        assert len(reads) >= 4 and len({r.token for r in reads}) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_confirmed_archive_acts_on_the_callers_account(gateway: HTTPServer, sb: Sandbox, mode: Any) -> None:
    """Resolve+Elicit round trip (sealed request state in the modern era) through the gateway."""

    async def accept(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept", content={"ok": True})

    target = sb.invoices(include_archived=False, tenant=F[0])[0 if mode == "auto" else 1]
    others = [sb.invoices(tenant=t) for t in sb.tenants if t != F[0]]
    async with connect(gateway, headers_for(F), mode, elicitation_callback=accept) as client:
        r = await client.call_tool("archive_invoice", {"invoice": target["id"]})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None and r.structured_content["confirmed"] == "user"
    assert target["id"] not in {i["id"] for i in sb.invoices(include_archived=False, tenant=F[0])}
    assert [sb.invoices(tenant=t) for t in sb.tenants if t != F[0]] == others


@pytest.mark.anyio
async def test_missing_or_partial_credentials(gateway: HTTPServer) -> None:
    async with connect(gateway, headers_for(None)) as client:
        tools = await client.list_tools()  # listing needs no account
        assert "list_invoices" in {t.name for t in tools.tools}
        r = await client.call_tool("list_invoices", {"limit": 1})
    assert r.is_error and CLIENT_ID_HEADER in text_of(r) and CLIENT_SECRET_HEADER in text_of(r)

    async with connect(gateway, headers_for(None, **{CLIENT_ID_HEADER: A[0]})) as client:
        r = await client.call_tool("list_invoices", {"limit": 1})
    assert r.is_error and f"Missing header {CLIENT_SECRET_HEADER}" in text_of(r)
    assert A[0] not in text_of(r)

    async with connect(gateway, headers_for(A, **{ENVIRONMENT_HEADER: "https://evil.example"})) as client:
        r = await client.call_tool("list_invoices", {"limit": 1})
    assert r.is_error and ENVIRONMENT_HEADER in text_of(r) and "demo" in text_of(r)
    assert "evil" not in text_of(r)

    async with connect(gateway, headers_for(A, **{ENVIRONMENT_HEADER: "Demo"})) as client:
        assert not (await client.call_tool("list_invoices", {"limit": 1})).is_error


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_completions_per_tenant(gateway: HTTPServer, sb: Sandbox, mode: Any) -> None:
    """completion/complete has no tool Context: it picks the tenant from the request headers too."""
    prompt = PromptReference(name="draft_invoice")
    arg = {"name": "customer", "value": ""}
    got = {}
    for creds in (A, B):
        async with connect(gateway, headers_for(creds), mode) as client:
            got[creds] = set((await client.complete(prompt, arg)).completion.values)
    for creds in (A, B):
        tenant = None if creds == A else creds[0]
        assert got[creds] == {c["name"] for c in sb.customers(tenant=tenant)}
    async with connect(gateway, headers_for(None)) as client:
        with pytest.raises(MCPError) as err:
            await client.complete(prompt, arg)
    assert CLIENT_SECRET_HEADER in err.value.error.message


def test_server_token_still_required(gateway: HTTPServer) -> None:
    import httpx

    creds = {CLIENT_ID_HEADER: A[0], CLIENT_SECRET_HEADER: A[1]}
    assert httpx.post(gateway.url, json={}, headers=creds).status_code == 401


def test_no_credential_in_debug_log(gateway: HTTPServer, sb: Sandbox) -> None:
    """After every test that uses this DEBUG-logging gateway (tests run in file order)."""
    log = gateway.stderr()
    assert "DEBUG" in log and "tool=list_invoices" in log
    leaks = [s for s in (A[1], *(t.client_secret for t in TENANTS), TOKEN, *sb.issued_tokens) if s in log]
    assert leaks == []
    assert not [cid for cid in (A[0], *(t.client_id for t in TENANTS)) if cid in log]


def test_gateway_needs_http_and_a_token_off_loopback(sb: Sandbox, tmp_path: Path) -> None:
    r = run_cli(["--gateway"], gateway_env(sb), tmp_path)
    assert r.returncode == 2 and "--transport http" in r.stderr
    r = run_cli(
        ["--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        gateway_env(sb, INVOICE_MCP_HTTP_TOKEN=""),
        tmp_path,
    )
    assert r.returncode == 2 and "INVOICE_MCP_HTTP_TOKEN" in r.stderr


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, HTTPServer]]:
    """A sandbox enforcing 5 requests/s per client id (burst 5) behind a gateway pacing at 5/s."""
    with new_sandbox(rate_limit=5.0, tenants=TENANTS[:1]) as sandbox:
        env = gateway_env(sandbox, AP_RATE_LIMIT="5")
        with http_servers((env, ()), cwd=tmp_path_factory.mktemp("paced")) as (server,):
            yield sandbox, server


@pytest.mark.anyio
async def test_per_tenant_rate_limit_held(paced: tuple[Sandbox, HTTPServer]) -> None:
    """Two tenants at once, each well past the API's burst: the sandbox never had to say 429."""
    sandbox, server = paced

    async def work(creds: tuple[str, str]) -> None:
        for status in ("open", "paid", "overdue"):
            r = await call(server, creds, "summarize_invoices", {"status": status})
            assert not r.is_error, text_of(r)

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, A)
        tg.start_soon(work, B)
    for tenant in (DEMO_CLIENT_ID, B[0]):
        assert len(sandbox.requests(tenant=tenant)) > 5
    assert [r for r in sandbox.requests() if r.status == 429] == []


def test_credential_headers_redacted_in_every_shape() -> None:
    r = RedactingFilter()
    for text in (
        f"{CLIENT_SECRET_HEADER}: s3cret-value",
        f"{{'{CLIENT_SECRET_HEADER.lower()}': 's3cret-value', '{CLIENT_ID_HEADER.lower()}': 'acme-id'}}",
        f"[(b'{CLIENT_SECRET_HEADER.lower()}', b's3cret-value'), (b'{CLIENT_ID_HEADER.lower()}', b'acme-id')]",
        f'Headers({{"{CLIENT_SECRET_HEADER.lower()}": "s3cret-value"}})',
    ):
        out = r.redact(text, urls=True)
        assert "s3cret-value" not in out and "acme-id" not in out and "***" in out


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[Sandbox, list[HTTPServer]]]:
    """Two gateway replicas sharing Redis, in front of a fresh two-tenant sandbox."""
    with new_sandbox(tenants=TENANTS[:1]) as sandbox:
        env = gateway_env(sandbox, INVOICE_MCP_REDIS_URL=redis_url)
        with http_servers((env, ()), (env, ()), cwd=tmp_path_factory.mktemp("replicas")) as servers:
            yield sandbox, servers


@pytest.mark.anyio
async def test_replicas_share_tokens_and_accept_each_others_cursors(
    replicas: tuple[Sandbox, list[HTTPServer]],
) -> None:
    sandbox, (one, two) = replicas
    for creds in (A, B, A, B):
        for server in (one, two):
            assert not (await call(server, creds, "list_invoices", {"limit": 1})).is_error
    assert sandbox.token_requests_for(A[0]) == 1 and sandbox.token_requests_for(B[0]) == 1
    first = await call(one, B, "list_invoices", {"limit": 2})
    assert first.structured_content is not None
    cursor = first.structured_content["next_cursor"]
    assert ids(await call(two, B, "list_invoices", {"limit": 2, "cursor": cursor})) == oracle(sandbox, B, 4)[2:]
    assert (await call(two, A, "list_invoices", {"limit": 2, "cursor": cursor})).is_error


@pytest.mark.anyio
@pytest.mark.slow
async def test_replicas_share_the_duplicate_guard_through_redis(replicas: tuple[Sandbox, list[HTTPServer]]) -> None:
    """20 identical creates for one account at once, 10 through each replica, the first POST held
    upstream for 1 s: one POST in the sandbox's request log, 19 refusals."""
    sandbox, (one, two) = replicas
    args = {
        "customer_id": sandbox.customers(tenant=B[0])[0]["id"],
        "due_date": "2027-03-01",
        "line_items": [{"description": "Replicated seats", "amount": 12, "quantity": 4}],
    }
    sandbox.faults.delay_next(1, 1.0, method="POST", path="/invoices")
    results: list[CallToolResult] = []

    async def create(server: HTTPServer) -> None:
        results.append(await call(server, B, "create_invoice", args))

    async with anyio.create_task_group() as tg:
        for k in range(20):
            tg.start_soon(create, (one, two)[k % 2])
    posts = [r for r in sandbox.requests("POST", "/invoices", tenant=B[0]) if r.path == "/invoices"]
    assert len(posts) == 1
    assert sum(not r.is_error for r in results) == 1
    assert all("not created" in text_of(r) for r in results if r.is_error)


LEGACY = "2025-11-25"


def raw_open(server: HTTPServer, headers: dict[str, str]) -> tuple[int, str | None]:
    """A 2025-11-25 initialize over plain HTTP: (status, the session id the client is given)."""
    import httpx

    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    r = httpx.post(server.url, json=body, headers={**headers, "Accept": "application/json, text/event-stream"})
    sid = r.headers.get("mcp-session-id")
    if r.status_code == 200 and sid:
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert raw(server, headers, sid, note).status_code == 202
    return r.status_code, sid


def raw(server: HTTPServer, headers: dict[str, str], sid: str, body: dict[str, Any], method: str = "POST") -> Any:
    import httpx

    h = {
        **headers,
        "Accept": "application/json, text/event-stream",
        "mcp-session-id": sid,
        "mcp-protocol-version": LEGACY,
    }
    return httpx.request(method, server.url, json=body if method == "POST" else None, headers=h)


def test_a_session_id_opens_nothing_for_other_credentials(gateway: HTTPServer, sb: Sandbox) -> None:
    """With tenant A's session id, B's credentials, or none, get 404 as if it did not exist: no
    call, no stream resumption, no delete; A's session goes on working."""
    status, sid = raw_open(gateway, headers_for(A))
    assert status == 200 and sid is not None
    target = sb.invoices(include_archived=False)[0]["id"]
    link = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "get_invoice_payment_link", "arguments": {"invoice": target}}}  # fmt: skip
    before = len(sb.requests())
    for other in (headers_for(B), headers_for(None), headers_for((A[0], A[1] + "x"))):
        r = raw(gateway, other, sid, link)
        assert r.status_code == 404 and "Session not found" in r.text
        assert raw(gateway, other, sid, {}, method="GET").status_code == 404  # no resumption either
        assert raw(gateway, other, sid, {}, method="DELETE").status_code == 404
    assert len(sb.requests()) == before  # nothing reached the API
    r = raw(gateway, headers_for(A), sid, link)
    assert r.status_code == 200 and '"isError":false' in r.text.replace(" ", "")
    assert raw(gateway, headers_for(A), sid, {}, method="DELETE").status_code == 200
    assert raw(gateway, headers_for(A), sid, link).status_code == 404  # deleted by its owner: gone


def test_session_ids_are_long_random_and_never_logged(gateway: HTTPServer) -> None:
    sids = [raw_open(gateway, headers_for(A))[1] for _ in range(3)]
    for sid in sids:
        assert sid is not None and len(sid) >= 43  # 256 random bits, URL-safe
        assert raw(gateway, headers_for(A), sid, {"jsonrpc": "2.0", "id": 5, "method": "ping"}).status_code == 200
    log = gateway.stderr()
    assert "Created new transport" in log  # the SDK logs its own, internal id at INFO
    assert not [sid for sid in sids if sid and sid in log]
    assert len(set(sids)) == 3


@pytest.fixture(scope="module")
def small_gateway(sb: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPServer]:
    with http_servers((gateway_env(sb), ("--max-sessions", "20")), cwd=tmp_path_factory.mktemp("gw20")) as (server,):
        yield server


def test_one_caller_cannot_take_every_session(small_gateway: HTTPServer) -> None:
    """20 credential-less sessions on a 20-session gateway: they get their share (a tenth),
    and tenant A's initialize still answers 200; so does B's, after A takes its own share."""
    opened = [raw_open(small_gateway, headers_for(None))[0] for _ in range(20)]
    assert opened.count(200) == 2 and opened.count(503) == 18
    a = [raw_open(small_gateway, headers_for(A))[0] for _ in range(3)]
    assert a == [200, 200, 503]
    assert raw_open(small_gateway, headers_for(B))[0] == 200


@pytest.mark.anyio
async def test_the_journal_names_the_gateway_account_and_keeps_tenants_apart(gateway: HTTPServer, sb: Sandbox) -> None:
    target = sb.invoices(include_archived=False, tenant=E[0])[2]
    async with connect(gateway, headers_for(E)) as client:
        r = await client.call_tool("archive_invoice", {"invoice": target["id"]})
        assert not r.is_error, text_of(r)
        mine = await client.call_tool("recent_activity", {"tool": "archive_invoice"})
    assert mine.structured_content is not None and mine.structured_content["count"] == 1
    assert f"gateway:{E[0]}" in text_of(mine) and E[1] not in text_of(mine)
    other = await call(gateway, D, "recent_activity", {"tool": "archive_invoice"})
    assert other.structured_content is not None and other.structured_content["count"] == 0
