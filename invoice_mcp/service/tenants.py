"""Many partner accounts in one process: one isolated `InvoiceService` per set of
credentials actually presented (gateway mode). Imports the API layer, never MCP.

A tenant is keyed by (base URL, client id, digest of the client secret), so
everything that belongs to an account belongs to exactly the credentials that
were presented: the access token (a wrong secret gets its own, refused, token
request instead of riding on a cached good token), the page cache, the customer
directory, the duplicate-create guard and the cursor key (derived from the
secret: a cursor of one account is refused by every other).

The rate limiter is keyed by (base URL, client id), since the API's 5 requests/s
are per key: tenants presenting the same client id share one schedule, and with
Redis configured every replica shares it too (the token cache as well).

All tenants send through one connection pool and TLS context (`SharedTransport`): a
connection carries no account state (each request has its own bearer token), and an httpx
client of its own would cost each tenant ~0.9 MB and ~30 ms of certificate loading.

Memory is bounded: at most `max_tenants` tenants are held (INVOICE_MCP_GATEWAY_MAX_TENANTS,
default 100); one idle for `idle_s` seconds (INVOICE_MCP_GATEWAY_IDLE_S, default 900), or
the least recently used beyond the cap, is evicted and its HTTP client closed (after its
in-flight calls end: callers `acquire` and `release`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from invoice_mcp.api.keys import secret_digest
from invoice_mcp.api.ratelimit import LocalRateLimiter, RateLimiter
from invoice_mcp.api.settings import BASE_URLS, Settings
from invoice_mcp.service.invoices import InvoiceService

if TYPE_CHECKING:
    from invoice_mcp.api.auth import TokenStore
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.service.journal import Journal

log = logging.getLogger(__name__)

TenantKey = tuple[str, str, str]
"""(base URL, client id, digest of the client secret)."""

TenantClientFactory = Callable[[Settings, RateLimiter, "TokenStore | None"], "APIClient"]


def environments(settings: Settings) -> dict[str, str]:
    """The API environments a request may name, and their base URLs: the public ones, with the
    operator's AP_BASE_URL (if any) standing for the configured AP_ENVIRONMENT. A request names
    an environment, never a URL."""
    return {**BASE_URLS, settings.environment: settings.base_url}


class SharedTransport(httpx.AsyncBaseTransport):
    """The gateway's one pool, lent to every tenant's client; a client closing it is a no-op
    (the registry closes the real one at shutdown)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class Credentials:
    """What one request presented. The secret is a SecretStr: it never prints."""

    client_id: str
    client_secret: SecretStr
    environment: str
    base_url: str

    @property
    def key(self) -> TenantKey:
        return (self.base_url, self.client_id, secret_digest(self.client_secret.get_secret_value()))


@dataclass(eq=False)
class Tenant:
    key: TenantKey
    settings: Settings
    client: APIClient
    service: InvoiceService
    last_used: float
    active: int = 0
    retired: bool = False

    def __repr__(self) -> str:  # no client id, no digest in logs
        return f"Tenant(active={self.active}, retired={self.retired})"


@dataclass
class _Limiter:
    limiter: RateLimiter
    users: int = 0


@dataclass
class TenantStats:
    created: int = 0
    evicted: int = 0
    closed: int = 0


class Tenants:
    """The registry: `acquire(credentials)` → a tenant (created on first use), `release(tenant)`
    when the call is over. Not thread-safe: one event loop, like the rest of the server."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_tenants: int | None = None,
        idle_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_factory: TenantClientFactory | None = None,
    ) -> None:
        self.settings = settings
        self.max_tenants = max_tenants if max_tenants is not None else settings.gateway_max_tenants
        self.idle_s = idle_s if idle_s is not None else settings.gateway_idle_s
        if self.max_tenants < 1:
            raise ValueError("max_tenants must be at least 1")
        self._clock = clock
        self._factory = client_factory
        self._tenants: OrderedDict[TenantKey, Tenant] = OrderedDict()
        self._limiters: dict[str, _Limiter] = {}
        self._token_store: TokenStore | None = None
        self._transport: SharedTransport | None = None
        self.journal_for: Callable[[Settings, APIClient], Journal] | None = None
        """Gives each tenant its journal (set by the server that owns the state store)."""
        self._closing: set[asyncio.Task[None]] = set()
        self._shared_closers: list[Callable[[], Any]] = []
        self.stats = TenantStats()

    def __len__(self) -> int:
        return len(self._tenants)

    def credentials(self, client_id: str, client_secret: str, environment: str | None = None) -> Credentials:
        """Credentials for the named environment (default: the configured one). Raises
        ValueError naming the allowed environments for any other name."""
        envs = environments(self.settings)
        name = (environment or self.settings.environment).strip().lower()
        if name not in envs:
            raise ValueError(f"unknown environment {environment!r}; use one of: {', '.join(sorted(envs))}")
        return Credentials(client_id, SecretStr(client_secret), name, envs[name])

    # -- acquire / release ------------------------------------------------------------

    def acquire(self, creds: Credentials) -> Tenant:
        """The tenant for these credentials, held until `release`."""
        now = self._clock()
        self._sweep(now)
        key = creds.key
        tenant = self._tenants.get(key)
        if tenant is None:
            tenant = self._create(key, creds, now)
            self._tenants[key] = tenant
            while len(self._tenants) > self.max_tenants:
                _, oldest = self._tenants.popitem(last=False)
                self._retire(oldest)
        else:
            self._tenants.move_to_end(key)
        tenant.active += 1
        tenant.last_used = now
        return tenant

    def release(self, tenant: Tenant) -> None:
        tenant.active -= 1
        tenant.last_used = self._clock()
        if tenant.retired and tenant.active == 0:
            self._schedule_close(tenant)

    def _sweep(self, now: float) -> None:
        expired = [t for t in self._tenants.values() if t.active == 0 and now - t.last_used >= self.idle_s]
        for tenant in expired:
            del self._tenants[tenant.key]
            self._retire(tenant)

    def _retire(self, tenant: Tenant) -> None:
        tenant.retired = True
        self.stats.evicted += 1
        log.debug("tenant evicted (%d held)", len(self._tenants))
        if tenant.active == 0:
            self._schedule_close(tenant)

    # -- building and closing ---------------------------------------------------------

    def _create(self, key: TenantKey, creds: Credentials, now: float) -> Tenant:
        settings = self.settings.model_copy(
            update={
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "environment": creds.environment,
                "base_url": creds.base_url,
                "gateway": False,
            }
        )
        limiter = self._limiter_for(settings)
        client = self._new_client(settings, limiter.limiter)
        journal = self.journal_for(settings, client) if self.journal_for is not None else None
        service = InvoiceService(client, cursor_key=settings.derive_key("cursor"), journal=journal)
        self.stats.created += 1
        return Tenant(key, settings, client, service, last_used=now)

    def _new_client(self, settings: Settings, limiter: RateLimiter) -> APIClient:
        store = self._shared_token_store()
        if self._factory is not None:
            return self._factory(settings, limiter, store)
        from invoice_mcp.api.client import APIClient

        if self._transport is None:
            pool = httpx.Limits(max_connections=100, max_keepalive_connections=20)
            self._transport = SharedTransport(httpx.AsyncHTTPTransport(limits=pool))
        return APIClient(settings, limiter=limiter, token_store=store, transport=self._transport)

    def _shared_token_store(self) -> TokenStore | None:
        """With Redis: one token store for all tenants (its keys carry the secret digest)."""
        if self.settings.redis_url is None:
            return None  # each tenant's APIClient keeps its own in-process token cache
        if self._token_store is None:
            from invoice_mcp.api.shared_state import RedisTokenStore

            store = RedisTokenStore(self.settings.redis_url.get_secret_value())
            self._token_store = store
            self._shared_closers.append(store.aclose)
        return self._token_store

    def _limiter_for(self, settings: Settings) -> _Limiter:
        entry = self._limiters.get(settings.rate_key)
        if entry is None:
            limiter: RateLimiter
            if self.settings.redis_url is not None:
                from invoice_mcp.api.shared_state import RedisRateLimiter

                limiter = RedisRateLimiter(
                    self.settings.redis_url.get_secret_value(), settings.rate_key, settings.rate_limit
                )
            else:
                limiter = LocalRateLimiter(settings.rate_limit, clock=self._clock)
            entry = self._limiters[settings.rate_key] = _Limiter(limiter)
        entry.users += 1
        return entry

    def limiter(self, creds: Credentials) -> RateLimiter | None:
        """The pacing schedule these credentials' client id is on (None if no tenant holds it)."""
        base_url, client_id, _ = creds.key
        entry = self._limiters.get(f"{base_url}|{client_id}")
        return entry.limiter if entry is not None else None

    def _schedule_close(self, tenant: Tenant) -> None:
        task = asyncio.get_running_loop().create_task(self._close(tenant))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, tenant: Tenant) -> None:
        try:
            await tenant.client.aclose()
        finally:
            self.stats.closed += 1
            rate_key = tenant.settings.rate_key
            entry = self._limiters.get(rate_key)
            if entry is not None:
                entry.users -= 1
                if entry.users <= 0:
                    del self._limiters[rate_key]
                    closer = getattr(entry.limiter, "aclose", None)
                    if closer is not None:
                        await closer()

    async def drain(self) -> None:
        """Wait for every scheduled close (tests; shutdown)."""
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    async def aclose(self) -> None:
        """Close every tenant and the shared state (server shutdown)."""
        while self._tenants:
            _, tenant = self._tenants.popitem(last=False)
            tenant.retired = True
            self._schedule_close(tenant)
        await self.drain()
        for closer in self._shared_closers:
            await closer()
        self._shared_closers.clear()
        if self._transport is not None:
            await self._transport.inner.aclose()
            self._transport = None

    def held(self) -> Mapping[TenantKey, Tenant]:
        return dict(self._tenants)
