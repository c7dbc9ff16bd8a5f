"""The tenant registry (gateway mode): keying by the credentials presented, shared pacing per
client id, eviction on an injected clock, and the request-scoped hold in GatewayState."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from invoice_mcp.api.auth import TokenStore
from invoice_mcp.api.client import APIClient
from invoice_mcp.api.ratelimit import LocalRateLimiter, RateLimiter
from invoice_mcp.api.settings import BASE_URLS, Settings, load_settings
from invoice_mcp.api.shared_state import RedisRateLimiter, RedisTokenStore, make_shared_state
from invoice_mcp.sandbox import Sandbox, SandboxConfig, TenantConfig
from invoice_mcp.server.app import cursor_key
from invoice_mcp.server.gateway import (
    CLIENT_ID_HEADER,
    CLIENT_SECRET_HEADER,
    ENVIRONMENT_HEADER,
    GatewayState,
    credentials_from_headers,
)
from invoice_mcp.service.tenants import Tenants, environments

from ..conftest import TODAY


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingClient(APIClient):
    closed: ClassVar[list[str]] = []

    async def aclose(self) -> None:
        RecordingClient.closed.append(self.settings.client_id)
        await super().aclose()


def factory(settings: Settings, limiter: RateLimiter, store: TokenStore | None) -> APIClient:
    return RecordingClient(settings, limiter=limiter, token_store=store)


def gateway_settings(**env: str) -> Settings:
    return load_settings({"INVOICE_MCP_GATEWAY": "1", "AP_ENVIRONMENT": "demo", **env})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tenants(clock: FakeClock) -> Tenants:
    RecordingClient.closed = []
    return Tenants(gateway_settings(), max_tenants=3, idle_s=60, clock=clock, client_factory=factory)


def test_gateway_settings_need_and_keep_no_credentials() -> None:
    s = load_settings({"INVOICE_MCP_GATEWAY": "yes", "AP_CLIENT_ID": "own", "AP_CLIENT_SECRET": "own-secret"})
    assert s.gateway and s.client_id == "" and s.client_secret.get_secret_value() == ""
    assert load_settings({}, gateway=True).gateway
    with pytest.raises(Exception, match="INVOICE_MCP_GATEWAY"):
        load_settings({"INVOICE_MCP_GATEWAY": "maybe"})


def test_environments_are_names_mapped_by_the_server() -> None:
    s = gateway_settings(AP_BASE_URL="http://127.0.0.1:9")
    assert environments(s) == {"demo": "http://127.0.0.1:9", "production": BASE_URLS["production"]}
    t = Tenants(s)
    assert t.credentials("id", "secret").base_url == "http://127.0.0.1:9"
    assert t.credentials("id", "secret", " PRODUCTION ").base_url == BASE_URLS["production"]
    with pytest.raises(ValueError, match="demo, production"):
        t.credentials("id", "secret", "http://evil.example")


@pytest.mark.anyio
async def test_keyed_by_the_credentials_presented(tenants: Tenants) -> None:
    a = tenants.acquire(tenants.credentials("acme", "s1"))
    a_again = tenants.acquire(tenants.credentials("acme", "s1"))
    a_wrong = tenants.acquire(tenants.credentials("acme", "s2"))
    b = tenants.acquire(tenants.credentials("bolt", "s1"))
    assert a is a_again and len({id(a), id(a_wrong), id(b)}) == 3
    # Separate token caches (keyed by the secret digest), pages, directories and cursor keys ...
    assert a.settings.cache_key != a_wrong.settings.cache_key
    assert a.client.tokens is not a_wrong.client.tokens
    assert a.service.chunks is not a_wrong.service.chunks and a.service.customers is not a_wrong.service.customers
    assert a.service.writer is not a_wrong.service.writer
    keys = {cursor_key(t.settings) for t in (a, a_wrong, b)}
    assert len(keys) == 3
    # ... one pacing schedule per client id.
    assert a.client.limiter is a_wrong.client.limiter
    assert a.client.limiter is not b.client.limiter
    for t in (a, a_again, a_wrong, b):
        tenants.release(t)


def test_pacing_is_per_client_id_on_the_limiters_schedule(clock: FakeClock) -> None:
    t = Tenants(gateway_settings(AP_RATE_LIMIT="5"), clock=clock)
    a = t.acquire(t.credentials("acme", "s1"))
    a2 = t.acquire(t.credentials("acme", "other"))
    b = t.acquire(t.credentials("bolt", "s1"))
    limiters = [x.client.limiter for x in (a, a2, b)]
    assert all(isinstance(lim, LocalRateLimiter) for lim in limiters)
    la, la2, lb = (lim for lim in limiters if isinstance(lim, LocalRateLimiter))  # on the frozen clock
    waits_a = [la.reserve() for _ in range(3)] + [la2.reserve()]
    waits_b = [lb.reserve() for _ in range(2)]
    assert waits_a == pytest.approx([0.0, 0.2, 0.4, 0.6])  # same client id: one schedule, whatever the secret
    assert waits_b == pytest.approx([0.0, 0.2])  # another client id is not held back by it
    assert t.limiter(t.credentials("acme", "s3")) is la


@pytest.mark.anyio
async def test_idle_tenants_evicted_and_closed(tenants: Tenants, clock: FakeClock) -> None:
    for cid in ("acme", "bolt"):
        tenants.release(tenants.acquire(tenants.credentials(cid, "s")))
    clock.now += 30
    tenants.release(tenants.acquire(tenants.credentials("bolt", "s")))
    clock.now += 30  # acme idle 60 s, bolt 30 s
    tenants.release(tenants.acquire(tenants.credentials("cove", "s")))
    await tenants.drain()
    assert RecordingClient.closed == ["acme"]
    assert sorted(k[1] for k in tenants.held()) == ["bolt", "cove"]
    assert tenants.limiter(tenants.credentials("acme", "s")) is None  # its schedule went with it
    clock.now += 60
    tenants.release(tenants.acquire(tenants.credentials("acme", "s")))  # a new tenant, fresh state
    await tenants.drain()
    assert sorted(RecordingClient.closed) == ["acme", "bolt", "cove"]
    assert [k[1] for k in tenants.held()] == ["acme"]
    assert tenants.stats.created == 4 and tenants.stats.evicted == 3


@pytest.mark.anyio
async def test_cap_evicts_least_recently_used_after_its_calls_end(tenants: Tenants, clock: FakeClock) -> None:
    busy = tenants.acquire(tenants.credentials("acme", "s"))  # held: a long call in flight
    for cid in ("bolt", "cove"):
        tenants.release(tenants.acquire(tenants.credentials(cid, "s")))
    tenants.release(tenants.acquire(tenants.credentials("dune", "s")))  # 4 > cap 3: acme (LRU) goes
    await tenants.drain()
    assert len(tenants) == 3 and ("acme" not in {k[1] for k in tenants.held()})
    assert RecordingClient.closed == []  # not under a call in flight
    assert busy.retired
    tenants.release(busy)
    await tenants.drain()
    assert RecordingClient.closed == ["acme"]


@pytest.mark.anyio
async def test_aclose_closes_everything(tenants: Tenants) -> None:
    for cid in ("acme", "bolt"):
        tenants.release(tenants.acquire(tenants.credentials(cid, "s")))
    await tenants.aclose()
    assert sorted(RecordingClient.closed) == ["acme", "bolt"] and len(tenants) == 0


def test_redis_keys_token_by_secret_and_pace_by_client_id() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing connects until first use
    s1 = load_settings({"AP_CLIENT_ID": "acme", "AP_CLIENT_SECRET": "s1", "INVOICE_MCP_REDIS_URL": url})
    s2 = s1.model_copy(update={"client_secret": type(s1.client_secret)("s2")})
    assert RedisTokenStore.redis_key(s1.cache_key) != RedisTokenStore.redis_key(s2.cache_key)
    shared = make_shared_state(s1)
    assert shared is not None and isinstance(shared[0], RedisRateLimiter)
    assert shared[0].redis_key == RedisRateLimiter(url, s2.rate_key, 5).redis_key
    assert "s1" not in s1.cache_key and "acme" in s1.rate_key


@pytest.mark.anyio
async def test_gateway_shares_one_redis_token_store(clock: FakeClock) -> None:
    t = Tenants(gateway_settings(INVOICE_MCP_REDIS_URL="redis://127.0.0.1:1/0"), clock=clock)
    a = t.acquire(t.credentials("acme", "s1"))
    b = t.acquire(t.credentials("bolt", "s1"))
    assert a.client.tokens._store is b.client.tokens._store
    assert isinstance(a.client.limiter, RedisRateLimiter) and isinstance(b.client.limiter, RedisRateLimiter)
    assert a.client.limiter.redis_key != b.client.limiter.redis_key
    for x in (a, b):
        t.release(x)
    await t.aclose()


def ctx_with(headers: dict[str, str] | None) -> Any:
    return SimpleNamespace(headers=headers)


def test_missing_and_partial_headers_name_the_headers(tenants: Tenants) -> None:
    for headers, missing in (
        (None, "No HTTP request headers"),
        ({}, f"Missing header {CLIENT_ID_HEADER} and {CLIENT_SECRET_HEADER}"),
        ({CLIENT_ID_HEADER: "acme"}, f"Missing header {CLIENT_SECRET_HEADER}."),
        ({CLIENT_SECRET_HEADER: "top-secret-value"}, f"Missing header {CLIENT_ID_HEADER}."),
        ({CLIENT_ID_HEADER: "acme", CLIENT_SECRET_HEADER: "x\x01y"}, f"Header {CLIENT_SECRET_HEADER} is not"),
        ({CLIENT_ID_HEADER: "acme", CLIENT_SECRET_HEADER: "s", ENVIRONMENT_HEADER: "staging"}, ENVIRONMENT_HEADER),
    ):
        with pytest.raises(ToolError) as err:
            credentials_from_headers(headers, tenants)
        assert missing in str(err.value)
        assert "top-secret-value" not in str(err.value) and "staging" not in str(err.value)
    lower = {CLIENT_ID_HEADER.lower(): " acme ", CLIENT_SECRET_HEADER.lower(): "s"}
    assert credentials_from_headers(lower, tenants).client_id == "acme"


@pytest.mark.anyio
async def test_gateway_state_holds_tenants_for_the_call(tenants: Tenants) -> None:
    state = GatewayState(tenants.settings, tenants)
    ctx = ctx_with({CLIENT_ID_HEADER: "acme", CLIENT_SECRET_HEADER: "s"})
    with state.request_scope():
        svc = state.service_for(ctx)
        assert state.service_for(ctx) is svc  # resolver and handler: same tenant, held twice
        (tenant,) = tenants.held().values()
        assert tenant.active == 2
    assert tenant.active == 0
    state.service_for(ctx)  # outside a tool call: not held
    assert tenant.active == 0
    with pytest.raises(RuntimeError, match="service_for"):
        _ = state.service
    with pytest.raises(RuntimeError, match="service_for"):
        _ = state.client
    await state.aclose()
    assert RecordingClient.closed == ["acme"]


@pytest.mark.anyio
async def test_tenants_share_one_pool_and_survive_each_others_eviction(clock: FakeClock) -> None:
    """Against a real two-tenant sandbox: the default client factory lends every tenant the one
    transport; evicting (closing) a tenant leaves the pool open for the others."""
    other = TenantConfig.numbered(1)
    with Sandbox(SandboxConfig(today=TODAY, rate_limit=None, invoices=20, tenants=(other,))) as sb:
        t = Tenants(gateway_settings(AP_BASE_URL=sb.base_url, AP_RATE_LIMIT="1000"), max_tenants=1, clock=clock)
        a = t.acquire(t.credentials(sb.config.client_id, sb.config.client_secret))
        first = await a.service.find_customers("")
        t.release(a)
        b = t.acquire(t.credentials(other.client_id, other.client_secret))  # cap 1: a is evicted and closed
        await t.drain()
        assert a.retired and a.client._transport is b.client._transport
        names = {c.id for c in await b.service.find_customers("")}
        assert names == {c["id"] for c in sb.customers(tenant=other.client_id)}
        assert not names & {c.id for c in first}
        t.release(b)
        await t.aclose()


def test_cap_and_idle_from_the_environment() -> None:
    s = gateway_settings(INVOICE_MCP_GATEWAY_MAX_TENANTS="7", INVOICE_MCP_GATEWAY_IDLE_S="30")
    t = Tenants(s)
    assert (t.max_tenants, t.idle_s) == (7, 30.0)
    with pytest.raises(Exception, match="INVOICE_MCP_GATEWAY_MAX_TENANTS"):
        gateway_settings(INVOICE_MCP_GATEWAY_MAX_TENANTS="2.5")
