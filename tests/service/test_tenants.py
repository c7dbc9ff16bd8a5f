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
from invoice_mcp.api.shared_state import RedisRateLimiter, RedisTokenStore
from invoice_mcp.sandbox import TenantConfig
from invoice_mcp.server.accounts import Accounts, ClientFactory, cursor_key
from invoice_mcp.server.gateway import (
    CLIENT_ID_HEADER,
    CLIENT_SECRET_HEADER,
    ENVIRONMENT_HEADER,
    GatewayState,
    credentials_from_headers,
)
from invoice_mcp.service.tenants import Tenants, environments

from ..conftest import new_sandbox


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


def registry(
    settings: Settings, clock: FakeClock | None = None, client: ClientFactory | None = None, **kw: Any
) -> Tenants:
    """Tenants built by the server's account factory, on the test's clock."""
    clock = clock or FakeClock()
    accounts = Accounts(settings, client_factory=client, clock=clock, many=True)
    return Tenants(settings, accounts, clock=clock, **kw)


def gateway_settings(**env: str) -> Settings:
    return load_settings({"INVOICE_MCP_GATEWAY": "1", "AP_ENVIRONMENT": "demo", **env})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tenants(clock: FakeClock) -> Tenants:
    RecordingClient.closed = []
    return registry(gateway_settings(), clock, factory, max_tenants=3, idle_s=60)


def test_gateway_settings_need_and_keep_no_credentials() -> None:
    s = load_settings({"INVOICE_MCP_GATEWAY": "yes", "AP_CLIENT_ID": "own", "AP_CLIENT_SECRET": "own-secret"})
    assert s.gateway and s.client_id == "" and s.client_secret.get_secret_value() == ""
    assert load_settings({}, gateway=True).gateway
    with pytest.raises(Exception, match="INVOICE_MCP_GATEWAY"):
        load_settings({"INVOICE_MCP_GATEWAY": "maybe"})


def test_environments_are_names_mapped_by_the_server() -> None:
    s = gateway_settings(AP_BASE_URL="http://127.0.0.1:9")
    assert environments(s) == {"demo": "http://127.0.0.1:9", "production": BASE_URLS["production"]}
    t = registry(s)
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
    t = registry(gateway_settings(AP_RATE_LIMIT="5"), clock)
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
async def test_cap_evicts_the_least_recently_used_idle_tenant_never_a_busy_one(
    tenants: Tenants, clock: FakeClock
) -> None:
    busy = verify(tenants.acquire(tenants.credentials("acme", "s")))  # held: a long call in flight
    tenants.release(busy)
    busy = tenants.acquire(tenants.credentials("acme", "s"))  # warm now, and busy again
    for cid in ("bolt", "cove", "dune"):
        tenants.release(verify(tenants.acquire(tenants.credentials(cid, "s"))))
    await tenants.drain()  # 4 > cap 3: bolt (the LRU idle one) goes, not the busy acme
    assert len(tenants) == 3 and {k[1] for k in tenants.warm()} == {"acme", "cove", "dune"}
    assert RecordingClient.closed == ["bolt"] and not busy.retired
    tenants.release(busy)
    tenants.release(verify(tenants.acquire(tenants.credentials("eden", "s"))))
    await tenants.drain()  # now acme is idle and the least recently used
    assert RecordingClient.closed == ["bolt", "acme"]


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
    limiter = Accounts(s1).rate_limiter(s1)
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter.redis_key == RedisRateLimiter(url, s2.rate_key, 5).redis_key
    assert "s1" not in s1.cache_key and "acme" in s1.rate_key


@pytest.mark.anyio
async def test_gateway_shares_one_redis_token_store(clock: FakeClock) -> None:
    t = registry(gateway_settings(INVOICE_MCP_REDIS_URL="redis://127.0.0.1:1/0"), clock)
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
    with new_sandbox(testing=False, invoices=20, tenants=(other,)) as sb:
        t = registry(gateway_settings(AP_BASE_URL=sb.base_url, AP_RATE_LIMIT="1000"), clock, max_tenants=1)
        a = t.acquire(t.credentials(sb.config.client_id, sb.config.client_secret))
        first = await a.service.find_customers("")
        t.release(a)
        b = t.acquire(t.credentials(other.client_id, other.client_secret))  # on probation: a stays
        assert not a.retired and a.client._transport is b.client._transport
        names = {c.id for c in await b.service.find_customers("")}
        assert names == {c["id"] for c in sb.customers(tenant=other.client_id)}
        assert not names & {c.id for c in first}
        t.release(b)  # accepted by the API: promoted, and over cap 1 the idle a is evicted and closed
        await t.drain()
        assert a.retired and list(t.warm().values()) == [b]
        names = {c.id for c in await b.service.find_customers("")}  # the shared pool is still open
        assert names == {c["id"] for c in sb.customers(tenant=other.client_id)}
        await t.aclose()
        assert isinstance(t.accounts, Accounts)
        await t.accounts.aclose()


def test_cap_and_idle_from_the_environment() -> None:
    s = gateway_settings(INVOICE_MCP_GATEWAY_MAX_TENANTS="7", INVOICE_MCP_GATEWAY_IDLE_S="30")
    t = registry(s)
    assert (t.max_tenants, t.idle_s) == (7, 30.0)
    with pytest.raises(Exception, match="INVOICE_MCP_GATEWAY_MAX_TENANTS"):
        gateway_settings(INVOICE_MCP_GATEWAY_MAX_TENANTS="2.5")


def verify(tenant: Any) -> Any:
    """What a first successful token request does: the credentials are known to be good."""
    tenant.client.tokens.verified = True
    return tenant


@pytest.mark.anyio
async def test_busy_tenant_is_never_evicted_and_refused_credentials_take_no_slot(
    tenants: Tenants, clock: FakeClock
) -> None:
    """101 calls with credentials the API refuses (never verified) while A's create is in flight:
    A stays, and so do the warm idle tenants B and C (cap 3)."""
    tenants.release(verify(tenants.acquire(tenants.credentials("acme", "s"))))
    a = tenants.acquire(tenants.credentials("acme", "s"))  # a create in flight
    for cid in ("bolt", "cove"):
        tenants.release(verify(tenants.acquire(tenants.credentials(cid, "s"))))
    for k in range(101):
        tenants.release(tenants.acquire(tenants.credentials(f"stranger-{k}", "wrong")))
    await tenants.drain()
    assert not a.retired and {k[1] for k in tenants.warm()} == {"acme", "bolt", "cove"}
    assert tenants.stats.probation_held <= tenants.probation_max
    assert len(tenants.held()) <= 3 + tenants.probation_max
    # A verified newcomer over the cap evicts the least recently used idle tenant, never the busy one.
    tenants.release(verify(tenants.acquire(tenants.credentials("dune", "s"))))
    await tenants.drain()
    assert not a.retired and {k[1] for k in tenants.warm()} == {"acme", "cove", "dune"}
    clock.now += 3600  # idle sweep: the busy tenant survives it too
    tenants.release(verify(tenants.acquire(tenants.credentials("eden", "s"))))
    assert not a.retired and {k[1] for k in tenants.warm()} == {"acme", "eden"}
    tenants.release(a)
    await tenants.aclose()


@pytest.mark.anyio
async def test_duplicate_guard_reservation_outlives_its_tenant(tenants: Tenants, clock: FakeClock) -> None:
    creds = tenants.credentials("acme", "s")
    old = verify(tenants.acquire(creds))
    assert await old.service.writer.reservations.claim("fingerprint", "pending-by-old", 300) is None
    tenants.release(old)
    clock.now += 3600  # idle: evicted and closed
    tenants.release(tenants.acquire(tenants.credentials("bolt", "s")))
    await tenants.drain()
    assert old.retired
    new = tenants.acquire(creds)
    assert new is not old
    assert await new.service.writer.reservations.claim("fingerprint", "pending-by-new", 300) == "pending-by-old"
    assert new.service.writer._scope == old.service.writer._scope
    tenants.release(new)
    await tenants.aclose()


@pytest.mark.anyio
async def test_gateway_tenants_use_the_redis_duplicate_guard(clock: FakeClock) -> None:
    from invoice_mcp.api.shared_state import RedisReservations

    t = registry(gateway_settings(INVOICE_MCP_REDIS_URL="redis://127.0.0.1:1/0"), clock)
    a = t.acquire(t.credentials("acme", "s1"))
    b = t.acquire(t.credentials("bolt", "s1"))
    assert isinstance(a.service.writer.reservations, RedisReservations)
    assert a.service.writer.reservations is b.service.writer.reservations
    for x in (a, b):
        t.release(x)
    await t.aclose()


@pytest.mark.anyio
async def test_wrong_secrets_for_a_client_id_hold_a_bounded_share_of_its_schedule(clock: FakeClock) -> None:
    """100 distinct wrong secrets for acme's client id, all at once, on the limiter's frozen clock:
    acme's next call would wait one slot (0.2 s at 5/s), not 100 (20 s); 95 are refused without
    a request, 1 reaches the API."""
    import anyio
    import httpx

    token_requests: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        token_requests.append(request.headers["authorization"])
        return httpx.Response(403, json={"message": "Invalid credentials"})

    def refusing(settings: Settings, limiter: RateLimiter, store: TokenStore | None) -> APIClient:
        return APIClient(settings, limiter=limiter, token_store=store, transport=httpx.MockTransport(api))

    t = registry(gateway_settings(AP_RATE_LIMIT="5"), clock, refusing)
    owner = t.credentials("acme", "right")
    t.release(verify(t.acquire(owner)))
    schedule = t.limiter(owner)
    assert isinstance(schedule, LocalRateLimiter) and schedule.next_slot - clock() == 0  # acme alone: no wait
    outcomes: list[str] = []

    async def stranger(k: int) -> None:
        tenant = t.acquire(t.credentials("acme", f"wrong-{k}"))
        try:
            await tenant.client.tokens.get()
        except Exception as exc:
            outcomes.append(getattr(exc, "code", None) or type(exc).__name__)
        finally:
            t.release(tenant)

    async with anyio.create_task_group() as tg:
        for k in range(100):
            tg.start_soon(stranger, k)
        await anyio.wait_all_tasks_blocked()
        gate = t.gate(owner)
        assert gate is not None and gate.waiting == gate.max_waiting  # 4 wait their gate slot, 1/s
        wait = schedule.next_slot - clock()
        tg.cancel_scope.cancel()
    assert wait <= schedule.interval + 1e-9  # acme's next call: at most one slot later (factor ≤ 1.25 at 5/s)
    assert len(token_requests) == 1
    assert outcomes.count("unverified_credentials") == 100 - 1 - gate.max_waiting
    assert outcomes.count("forbidden") == 1
    assert len(t.warm()) == 1 and t.stats.probation_held <= t.probation_max
    await t.aclose()


@pytest.mark.anyio
async def test_a_tenant_held_for_its_call_only_is_remembered_once_accepted(tenants: Tenants) -> None:
    """Probation full of busy strangers: a newcomer is served for its call only; once the API has
    accepted its credentials, its next call skips probation."""
    tenants.probation_max = 2
    busy = [tenants.acquire(tenants.credentials(f"stranger-{k}", "x")) for k in range(2)]
    newcomer = verify(tenants.acquire(tenants.credentials("acme", "s")))
    assert newcomer.retired and "acme" not in {k[1] for k in tenants.held()}
    tenants.release(newcomer)
    again = tenants.acquire(tenants.credentials("acme", "s"))
    assert not again.probation and "acme" in {k[1] for k in tenants.warm()}
    for t in (*busy, again):
        tenants.release(t)
    await tenants.aclose()
