"""Many partner accounts in one process: one isolated `InvoiceService` per set of
credentials actually presented (gateway mode). Imports the API layer, never MCP.

This module decides which accounts to keep (keying, probation, eviction); it builds
nothing itself. Each tenant's account is made by the `AccountFactory` it is given (the
server's `Accounts`), which also owns what accounts share: the HTTP connection pool, the
Redis pool, the token store and the duplicate guard's reservations.

A tenant is keyed by (base URL, client id, digest of the client secret), so
everything that belongs to an account belongs to exactly the credentials that
were presented: the access token (a wrong secret gets its own, refused, token
request instead of riding on a cached good token), the page cache, the customer
directory, the duplicate-create guard and the cursor key (derived from the
secret: a cursor of one account is refused by every other).

The rate limiter is keyed by (base URL, client id), since the API's 5 requests/s
are per key: tenants presenting the same client id share one schedule, and with
Redis configured every replica shares it too (the token cache as well).

Memory is bounded: at most `max_tenants` tenants are held (INVOICE_MCP_GATEWAY_MAX_TENANTS,
default 100); one idle for `idle_s` seconds (INVOICE_MCP_GATEWAY_IDLE_S, default 900), or
the least recently used idle one beyond the cap, is evicted and its HTTP client closed.
A tenant with a call in flight (callers `acquire` and `release`) is never evicted: the cap
may be exceeded by busy tenants until their calls end.

Credentials are only trusted once the API has accepted them (a token was minted or found in
the shared store). Until then a tenant is on probation: held apart, at most
`PROBATION_MAX` of them (idle ones dropped first, beyond that a tenant lives for its call
only), so refused credentials never take a warm tenant's place. Their token requests pass a
bounded gate per client id (api/ratelimit.py `StrangerGate`) before the key's schedule.

The duplicate guard's reservations belong to the process, not to the evictable tenant: the
factory's one store (Redis when INVOICE_MCP_REDIS_URL is set, shared by every replica; else in
memory) for all tenants, keyed by account (base URL, client id, secret digest), so a reservation
held by a create survives its tenant's eviction and a fresh tenant for the same account sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from invoice_mcp.api.keys import secret_digest
from invoice_mcp.api.ratelimit import RateLimiter, StrangerGate
from invoice_mcp.api.settings import BASE_URLS, Settings

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.service.invoices import InvoiceService

log = logging.getLogger(__name__)

TenantKey = tuple[str, str, str]
"""(base URL, client id, digest of the client secret)."""


class AccountFactory(Protocol):
    """What the registry needs to make a tenant (the server's `Accounts` is one)."""

    def rate_limiter(self, settings: Settings) -> RateLimiter:
        """A pacing schedule for the API key of these settings."""
        ...

    def service(self, settings: Settings, *, limiter: RateLimiter | None = None) -> InvoiceService:
        """Everything the account with these settings owns, paced by `limiter`."""
        ...


PROBATION_MAX = 16
"""Tenants whose credentials the API has not accepted yet, held at most (apart from the cap)."""
STRANGER_RATE = 1.0
"""Token requests per second per client id for credentials not yet known good (1 of the key's 5)."""
STRANGER_WAITING = 4
"""Such token requests in the gate at once per client id; more are refused without a request."""
KNOWN_GOOD_MAX = 10_000
"""Tenant keys (digests only) remembered as accepted by the API, so a returning tenant skips probation."""


def environments(settings: Settings) -> dict[str, str]:
    """The API environments a request may name, and their base URLs: the public ones, with the
    operator's AP_BASE_URL (if any) standing for the configured AP_ENVIRONMENT. A request names
    an environment, never a URL."""
    return {**BASE_URLS, settings.environment: settings.base_url}


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
    probation: bool = False

    @property
    def verified(self) -> bool:
        """The API has accepted these credentials (a token was minted or found)."""
        return self.client.tokens.verified

    def __repr__(self) -> str:  # no client id, no digest in logs
        return f"Tenant(active={self.active}, retired={self.retired})"


@dataclass
class _Limiter:
    limiter: RateLimiter
    gate: StrangerGate
    users: int = 0


@dataclass
class TenantStats:
    created: int = 0
    evicted: int = 0
    closed: int = 0
    promoted: int = 0
    probation_held: int = 0
    """The most tenants on probation held at once."""


class Tenants:
    """The registry: `acquire(credentials)` → a tenant (created on first use), `release(tenant)`
    when the call is over. Not thread-safe: one event loop, like the rest of the server."""

    def __init__(
        self,
        settings: Settings,
        accounts: AccountFactory,
        *,
        max_tenants: int | None = None,
        idle_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.accounts = accounts
        self.max_tenants = max_tenants if max_tenants is not None else settings.gateway_max_tenants
        self.idle_s = idle_s if idle_s is not None else settings.gateway_idle_s
        if self.max_tenants < 1:
            raise ValueError("max_tenants must be at least 1")
        self._clock = clock
        self._tenants: OrderedDict[TenantKey, Tenant] = OrderedDict()
        self._probation: OrderedDict[TenantKey, Tenant] = OrderedDict()
        self._known_good: OrderedDict[TenantKey, None] = OrderedDict()
        self.probation_max = PROBATION_MAX
        self._limiters: dict[str, _Limiter] = {}
        self._closing: set[asyncio.Task[None]] = set()
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
        if tenant is not None:
            self._tenants.move_to_end(key)
        elif (tenant := self._probation.get(key)) is not None:
            self._probation.move_to_end(key)
        else:
            tenant = self._create(key, creds, now)
            tenant.active += 1
            if key in self._known_good:  # accepted before: no probation
                self._known_good.move_to_end(key)
                self._admit(tenant)
            else:
                tenant.probation = True
                self._probation[key] = tenant
                self._trim_probation(tenant)
            tenant.last_used = now
            return tenant
        tenant.active += 1
        tenant.last_used = now
        return tenant

    def release(self, tenant: Tenant) -> None:
        tenant.active -= 1
        tenant.last_used = self._clock()
        if tenant.probation and tenant.verified:
            self._remember_good(tenant.key)  # even for a tenant held for its call only: next time, no probation
        if tenant.retired:
            if tenant.active == 0:
                self._schedule_close(tenant)
            return
        if tenant.probation and tenant.verified:
            self._promote(tenant)

    def _remember_good(self, key: TenantKey) -> None:
        self._known_good[key] = None
        self._known_good.move_to_end(key)
        while len(self._known_good) > KNOWN_GOOD_MAX:
            self._known_good.popitem(last=False)

    def _promote(self, tenant: Tenant) -> None:
        """Probation over: the API accepted these credentials."""
        if self._probation.get(tenant.key) is tenant:
            del self._probation[tenant.key]
        tenant.probation = False
        self.stats.promoted += 1
        self._admit(tenant)

    def _admit(self, tenant: Tenant) -> None:
        """Hold a trusted tenant; beyond the cap the least recently used idle ones go (never a busy one)."""
        self._tenants[tenant.key] = tenant
        excess = len(self._tenants) - self.max_tenants
        if excess > 0:
            idle = [t for t in self._tenants.values() if t.active == 0 and t is not tenant][:excess]
            for old in idle:
                del self._tenants[old.key]
                self._retire(old)

    def _trim_probation(self, newcomer: Tenant) -> None:
        """At most `probation_max` on probation: idle ones go first; if all are busy, the newcomer
        is held for its call only."""
        excess = len(self._probation) - self.probation_max
        if excess > 0:
            idle = [t for t in self._probation.values() if t.active == 0][:excess]
            for old in idle:
                del self._probation[old.key]
                self._retire(old)
            if len(self._probation) > self.probation_max:
                del self._probation[newcomer.key]
                newcomer.retired = True  # closed when its call ends
        self.stats.probation_held = max(self.stats.probation_held, len(self._probation))

    def _sweep(self, now: float) -> None:
        for held in (self._tenants, self._probation):
            expired = [t for t in held.values() if t.active == 0 and now - t.last_used >= self.idle_s]
            for tenant in expired:
                del held[tenant.key]
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
        service = self.accounts.service(settings, limiter=limiter.limiter)
        if key not in self._known_good:
            service.client.token_gate = limiter.gate
        self.stats.created += 1
        return Tenant(key, settings, service.client, service, last_used=now)

    def _limiter_for(self, settings: Settings) -> _Limiter:
        entry = self._limiters.get(settings.rate_key)
        if entry is None:
            limiter = self.accounts.rate_limiter(settings)
            gate = StrangerGate(min(STRANGER_RATE, settings.rate_limit), STRANGER_WAITING, clock=self._clock)
            entry = self._limiters[settings.rate_key] = _Limiter(limiter, gate)
        entry.users += 1
        return entry

    def limiter(self, creds: Credentials) -> RateLimiter | None:
        """The pacing schedule these credentials' client id is on (None if no tenant holds it)."""
        entry = self._limiters.get(self._rate_key(creds))
        return entry.limiter if entry is not None else None

    def gate(self, creds: Credentials) -> StrangerGate | None:
        """The gate unverified token requests for this client id pass (None if no tenant holds it)."""
        entry = self._limiters.get(self._rate_key(creds))
        return entry.gate if entry is not None else None

    @staticmethod
    def _rate_key(creds: Credentials) -> str:
        base_url, client_id, _ = creds.key
        return f"{base_url}|{client_id}"

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
        """Close every tenant (server shutdown; what they share is the account factory's to close)."""
        for held in (self._tenants, self._probation):
            while held:
                _, tenant = held.popitem(last=False)
                tenant.retired = True
                if tenant.active == 0:
                    self._schedule_close(tenant)
        await self.drain()

    def held(self) -> Mapping[TenantKey, Tenant]:
        """Every tenant held, trusted or on probation."""
        return {**self._tenants, **self._probation}

    def warm(self) -> Mapping[TenantKey, Tenant]:
        """The tenants whose credentials the API has accepted (the ones the cap is about)."""
        return dict(self._tenants)
