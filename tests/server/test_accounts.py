"""The account factory: what one account owns, what the accounts of a process share, and that
single-account mode, gateway tenants and OAuth grants all get their accounts from it."""

from __future__ import annotations

import pytest

from invoice_mcp.api.ratelimit import LocalRateLimiter
from invoice_mcp.api.settings import Settings, load_settings
from invoice_mcp.api.shared_state import RedisRateLimiter, RedisReservations, RedisTokenStore
from invoice_mcp.api.transport import SharedTransport
from invoice_mcp.faces.oauth.accounts import OAuthState
from invoice_mcp.server.accounts import Accounts, cursor_key
from invoice_mcp.server.gateway import GatewayState
from invoice_mcp.server.state import AppState
from invoice_mcp.service.guard import LocalReservations
from invoice_mcp.service.journal import scope_of

pytestmark = pytest.mark.anyio


def account(client_id: str, secret: str = "s", **env: str) -> Settings:
    return load_settings({"AP_CLIENT_ID": client_id, "AP_CLIENT_SECRET": secret, "AP_ENVIRONMENT": "demo", **env})


async def test_an_account_owns_its_client_tokens_limiter_journal_and_cursor_key() -> None:
    accounts = Accounts(account("acme"), many=True)
    a, b = accounts.service(account("acme")), accounts.service(account("bolt"))
    assert a.client.settings.client_id == "acme" and b.client.settings.client_id == "bolt"
    assert a.client.tokens is not b.client.tokens and a.client.limiter is not b.client.limiter
    assert isinstance(a.client.limiter, LocalRateLimiter)
    assert a.chunks is not b.chunks and a.customers is not b.customers
    assert a.journal is not None and a.journal.scope == scope_of(account("acme").cache_key)
    assert b.journal is not None and a.journal.scope != b.journal.scope
    assert a.journal.store is accounts.state is b.journal.store  # one state store, a scope each
    assert cursor_key(account("acme")) != cursor_key(account("bolt"))
    # What the process shares: one transport, one duplicate-guard store (keyed by account).
    assert isinstance(a.client._transport, SharedTransport) and a.client._transport is b.client._transport
    assert isinstance(a.writer.reservations, LocalReservations)
    assert a.writer.reservations is b.writer.reservations is accounts.reservations()
    await accounts.aclose()


async def test_a_single_account_keeps_httpx_own_pool() -> None:
    """One account: its client makes its own pool (which honours HTTPS_PROXY); nothing is lent."""
    accounts = Accounts(account("acme"))
    assert accounts.transport() is None and accounts.service(account("acme")).client._transport is None
    await accounts.aclose()


async def test_with_redis_every_account_shares_the_process_pool() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing connects until first use
    accounts = Accounts(account("acme", INVOICE_MCP_REDIS_URL=url), many=True)
    a, b = accounts.service(account("acme")), accounts.service(account("bolt"))
    pool = accounts.redis()
    assert isinstance(a.client.limiter, RedisRateLimiter) and isinstance(b.client.limiter, RedisRateLimiter)
    assert isinstance(a.writer.reservations, RedisReservations) and a.writer.reservations is b.writer.reservations
    store = a.client.tokens._store
    assert isinstance(store, RedisTokenStore) and store is b.client.tokens._store
    assert pool is not None and a.client.limiter.pool is b.client.limiter.pool is store.pool is pool
    assert a.writer.reservations.pool is pool
    await accounts.aclose()


async def test_single_account_gateway_and_oauth_states_build_through_the_factory() -> None:
    single = AppState(account("acme"))
    svc = single.service
    assert svc.journal is not None and svc.journal.store is single.state is single.accounts.state
    assert svc.writer.reservations is single.accounts.reservations()
    await single.aclose()

    gateway_settings = load_settings({"INVOICE_MCP_GATEWAY": "1", "AP_ENVIRONMENT": "demo"})
    gateway = GatewayState(gateway_settings)
    assert gateway.tenants.accounts is gateway.accounts and gateway.accounts.many
    tenant = gateway.tenants.acquire(gateway.tenants.credentials("acme", "s"))
    assert tenant.service.journal is not None and tenant.service.journal.store is gateway.state
    gateway.tenants.release(tenant)
    await gateway.aclose()

    oauth = OAuthState(gateway_settings, provider=None, tenants=gateway.tenants)  # type: ignore[arg-type]
    assert oauth.accounts is gateway.accounts  # the grants' tenants: the same factory, the same journals
    tenant = oauth.tenants.acquire(oauth.tenants.credentials("bolt", "s"))
    assert tenant.service.journal is not None and tenant.service.journal.store is oauth.state
    oauth.tenants.release(tenant)
    await oauth.aclose()
