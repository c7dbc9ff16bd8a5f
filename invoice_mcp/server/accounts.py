"""Everything one partner account owns, built in one place.

An account is one set of API credentials. What belongs to it: the API client, its access
tokens, its rate limiter, its page cache and customer directory (inside `InvoiceService`),
its duplicate-create guard, its write journal and its cursor key. `Accounts.service(settings)`
builds all of it. Single-account mode (`AppState`), gateway tenants (`Tenants`, which decides
only which accounts to keep) and OAuth grants (through the tenants) all call it, so an account
is wired the same way whichever door it came in by, and a fix to the wiring reaches all three.

What a process shares between its accounts is made once, on first use, and closed by
`aclose`: with many accounts, one HTTP connection pool and TLS context (api/transport.py), one
Redis pool (INVOICE_MCP_REDIS_URL) lent to every rate
limiter, the token store and the duplicate guard's reservations, and one state store for the
journals. Without Redis the token caches and limiters live in the process, and the
reservations are one in-memory store for every account of the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from invoice_mcp.api.ratelimit import LocalRateLimiter, RateLimiter
from invoice_mcp.api.settings import Settings
from invoice_mcp.state import LazyStore

if TYPE_CHECKING:
    from invoice_mcp.api.auth import TokenStore
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.api.shared_state import RedisPool
    from invoice_mcp.api.transport import SharedTransport
    from invoice_mcp.service import InvoiceService
    from invoice_mcp.service.guard import Reservations
    from invoice_mcp.service.journal import Journal

ClientFactory = Callable[[Settings, RateLimiter, "TokenStore | None"], "APIClient"]
"""Replaces how the API client is made (tests: a mock transport, a virtual clock); it is
given the account's settings, its rate limiter and the shared token store (None: in memory)."""

MAX_CONNECTIONS = 100
"""Connections to the API a process keeps open at most, all accounts together."""
MAX_KEEPALIVE = 20


def cursor_key(settings: Settings) -> bytes:
    """Same credentials → same key, so every replica accepts every other's cursors."""
    return settings.derive_key("cursor")


class Accounts:
    """The account factory of one process. `settings` are the process's (the Redis and state
    URLs); each account's own settings (its credentials) are passed to `service`. `clock` paces
    the in-process rate limiters (tests freeze it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: ClientFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        state: LazyStore | None = None,
        many: bool = False,
    ) -> None:
        self.settings = settings
        self.many = many
        """One process, many accounts (gateway, OAuth): their clients send through one pool. A
        single account's client keeps httpx's own pool, which also honours HTTPS_PROXY and
        NO_PROXY from the environment (a lent transport does not)."""
        self.state = state or LazyStore(settings.state_url.get_secret_value() if settings.state_url else None)
        """The state store (write journals), opened on the first write."""
        self._client_factory = client_factory
        self._clock = clock
        self._transport: SharedTransport | None = None
        self._redis: RedisPool | None = None
        self._token_store: TokenStore | None = None
        self._reservations: Reservations | None = None

    def service(self, settings: Settings, *, limiter: RateLimiter | None = None) -> InvoiceService:
        """Everything the account with these settings owns, as its service (`service.client` is its
        API client). `limiter`: a schedule shared with other accounts on the same API key."""
        from invoice_mcp.service import InvoiceService

        client = self.client(settings, limiter=limiter)
        journal = self.journal(settings, client)
        return InvoiceService(
            client,
            cursor_key=cursor_key(settings),
            reservations=self.reservations(),
            journal=journal,
            state=self.state,
        )

    def client(
        self, settings: Settings, *, limiter: RateLimiter | None = None, max_attempts: int | None = None
    ) -> APIClient:
        """The account's API client over the shared transport, token store and (unless given) a
        rate limiter of its own key."""
        limiter = limiter or self.rate_limiter(settings)
        store = self.token_store()
        if self._client_factory is not None:
            return self._client_factory(settings, limiter, store)
        from invoice_mcp.api.client import MAX_ATTEMPTS, APIClient

        return APIClient(
            settings,
            limiter=limiter,
            token_store=store,
            transport=self.transport(),
            max_attempts=max_attempts or MAX_ATTEMPTS,
        )

    def rate_limiter(self, settings: Settings) -> RateLimiter:
        """A schedule for the account's API key (5 requests/s per key): in Redis, shared by every
        replica, else in this process."""
        pool = self.redis()
        if pool is not None:
            from invoice_mcp.api.shared_state import RedisRateLimiter

            return RedisRateLimiter(pool, settings.rate_key, settings.rate_limit)
        return LocalRateLimiter(settings.rate_limit, clock=self._clock)

    def journal(self, settings: Settings, client: APIClient) -> Journal:
        """The account's write journal, in the process's state store."""
        from invoice_mcp.service.journal import Journal, scope_of

        return Journal(
            self.state,
            scope_of(settings.cache_key),
            clock=client.clock.now,
            retention_days=settings.journal_retention_days,
        )

    # -- what the process shares between its accounts ------------------------------------

    def redis(self) -> RedisPool | None:
        """The process's one Redis pool (None without INVOICE_MCP_REDIS_URL)."""
        if self._redis is None and self.settings.redis_url is not None:
            from invoice_mcp.api.shared_state import redis_pool

            self._redis = redis_pool(self.settings)
        return self._redis

    def token_store(self) -> TokenStore | None:
        """With Redis: one token store for every account (its keys carry the secret digest);
        without, None, and each client keeps its own tokens in memory."""
        pool = self.redis()
        if self._token_store is None and pool is not None:
            from invoice_mcp.api.shared_state import RedisTokenStore

            self._token_store = RedisTokenStore(pool)
        return self._token_store

    def reservations(self) -> Reservations:
        """The duplicate guard's one store for every account of the process (Redis: of every
        replica), keyed by account, so a reservation outlives an evicted gateway tenant."""
        if self._reservations is None:
            pool = self.redis()
            if pool is not None:
                from invoice_mcp.api.shared_state import RedisReservations

                self._reservations = RedisReservations(pool)
            else:
                from invoice_mcp.service.guard import LocalReservations

                self._reservations = LocalReservations()
        return self._reservations

    def transport(self) -> SharedTransport | None:
        """The one HTTP connection pool every account's client sends through (None: the one
        account's client makes its own)."""
        if self._transport is None and self.many:
            import httpx

            from invoice_mcp.api.transport import SharedTransport

            limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)
            self._transport = SharedTransport(httpx.AsyncHTTPTransport(limits=limits))
        return self._transport

    async def aclose(self) -> None:
        """Close what the accounts share (after their clients are closed); made again if used later."""
        transport, redis = self._transport, self._redis
        self._transport = None
        self._redis = None
        self._token_store = None
        if redis is not None:  # the Redis reservations went with their pool; in-memory ones stay
            self._reservations = None
        if transport is not None:
            await transport.inner.aclose()
        if redis is not None:
            await redis.aclose()
        await self.state.aclose()
