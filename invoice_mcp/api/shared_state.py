"""Rate limit, token cache and duplicate-guard reservations shared by every replica, kept in Redis.

The API allows 5 requests/second per API key, not per process: replicas that
each paced themselves would together overrun it, and each would mint its own
token. With INVOICE_MCP_REDIS_URL set, all of them reserve slots from one
schedule and read one token cache.

A process opens one `RedisPool` and lends it to every limiter, token store and
reservation store it makes (the account factory does), so a gateway with many
accounts still holds one set of Redis connections. A store given a URL instead
opens a pool of its own and closes it with itself.

Redis keys never contain the client id or a token: names carry a sha256 of the
cache key, and the URL (which may hold a password) is shown redacted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import anyio

from invoice_mcp.api.errors import SharedStateError
from invoice_mcp.api.settings import Settings, SettingsError
from invoice_mcp.logs import redact_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

ENV_VAR = "INVOICE_MCP_REDIS_URL"
RATE_PREFIX = "invoice-mcp:rl:"
FREE_PREFIX = "invoice-mcp:rl-free:"
TOKEN_PREFIX = "invoice-mcp:tok:"
LOCK_PREFIX = "invoice-mcp:mint:"
DUP_PREFIX = "invoice-mcp:dup:"
MAX_CONNECTIONS = 32

_T = TypeVar("_T")

# Times are integer microseconds of the Redis clock, so every process agrees on
# "now". Numbers are formatted with %.0f: Lua's default %.14g would round them.
_RESERVE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- A slot returned by a cancelled waiter (KEYS[2], a sorted set) is handed out first.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', now))
local free = redis.call('ZRANGE', KEYS[2], 0, 0)
if free[1] then
  redis.call('ZREM', KEYS[2], free[1])
  local slot = tonumber(free[1])
  return {slot - now, free[1]}
end
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local nxt = slot + tonumber(ARGV[1])
local ttl_ms = math.ceil((nxt - now) / 1000) + 1000  -- idle keys vanish
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', string.format('%.0f', ttl_ms))
return {slot - now, string.format('%.0f', slot)}
"""

_RELEASE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
if slot < now then return 0 end  -- its time has passed: spent
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if stored - interval == slot then
  -- The last slot came back: the schedule shrinks, and holes just below close up.
  stored = slot
  while redis.call('ZREM', KEYS[2], string.format('%.0f', stored - interval)) == 1 do
    stored = stored - interval
  end
  local ttl_ms = math.max(1, math.ceil((stored - now) / 1000)) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', stored), 'PX', string.format('%.0f', ttl_ms))
else
  redis.call('ZADD', KEYS[2], slot, string.format('%.0f', slot))
  local ttl_ms = math.ceil((slot - now) / 1000) + 1000
  if redis.call('PTTL', KEYS[2]) < ttl_ms then redis.call('PEXPIRE', KEYS[2], ttl_ms) end
end
return 1
"""

_PENALIZE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local target = now + tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', target))
if target > tonumber(redis.call('GET', KEYS[1]) or '0') then
  local ttl_ms = math.ceil((target - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', target), 'PX', string.format('%.0f', ttl_ms))
end
return 0
"""

_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _secrets_in(url: str) -> list[str]:
    """Every password-like piece of `url`, to scrub from error messages."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        if "@" in parts.netloc:
            found.append(parts.netloc.rsplit("@", 1)[0])
        found += [v for k, v in parse_qsl(parts.query) if "pass" in k.lower()]
    except ValueError:
        return [url]
    return [s for x in found if x for s in {x, unquote(x), quote(x, safe="")}]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _import_redis() -> Any:
    try:
        import redis.asyncio
    except ImportError as exc:
        raise SettingsError(
            f"{ENV_VAR} is set but the redis package is not installed: pip install 'invoice-mcp[redis]'"
        ) from exc
    return redis


class RedisPool:
    """One async Redis connection pool; turns connection failures into SharedStateError.

    Nothing connects here; the first use raises SharedStateError if Redis is unreachable
    (`ping()` checks at start-up)."""

    def __init__(self, redis_url: str) -> None:
        redis = _import_redis()
        self.url = redact_url(redis_url)
        self._secrets = _secrets_in(redis_url)
        self._errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
        )
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff

        try:
            # A few quick retries: callers are waiting on an API request, and a
            # dead Redis should fail in well under a second, not after redis-py's
            # default ten retries.
            # A blocking pool: a burst of callers (300 concurrent tool calls) queues for a
            # connection instead of failing with "Too many connections".
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                redis_url,
                max_connections=MAX_CONNECTIONS,
                timeout=10.0,
                decode_responses=True,
                socket_connect_timeout=5.0,
                socket_timeout=5.0,
                retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries=3),
            )
            self.redis: Redis = redis.asyncio.Redis.from_pool(pool)
        except ValueError as exc:
            raise SettingsError(f"{ENV_VAR} is not a valid Redis URL ({self.url}): {self._scrub(exc)}") from None

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    async def run(self, op: Awaitable[_T]) -> _T:
        try:
            return await op
        except self._errors as exc:
            raise SharedStateError(f"cannot use Redis at {ENV_VAR}={self.url}: {self._scrub(exc)}") from None

    async def ping(self) -> None:
        """Fail fast (SharedStateError) if Redis is unreachable or refuses us."""
        await self.run(self.redis.ping())

    async def aclose(self) -> None:
        await self.redis.aclose()

    def __repr__(self) -> str:
        return f"RedisPool({self.url!r})"


class _OnPool:
    """A store on a `RedisPool`: the process's shared one, or (given a URL) one of its own."""

    def __init__(self, redis: RedisPool | str) -> None:
        self._owns_pool = isinstance(redis, str)
        self.pool = RedisPool(redis) if isinstance(redis, str) else redis
        self._redis = self.pool.redis
        self._url = self.pool.url
        self._run = self.pool.run

    async def ping(self) -> None:
        """Fail fast (SharedStateError) if Redis is unreachable or refuses us."""
        await self.pool.ping()

    async def aclose(self) -> None:
        """Close the pool if it is this store's own (the shared one is closed by its owner)."""
        if self._owns_pool:
            await self.pool.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"


@dataclass(frozen=True)
class Grant:
    """A reserved slot: `slot` is on the Redis clock (s since the epoch); `wait` is how far off it was."""

    slot: float
    wait: float
    slot_us: int = 0


class RedisRateLimiter(_OnPool):
    """`LocalRateLimiter` semantics (evenly spaced slots, no bursts) for every process at once.

    One Lua script reserves the next slot atomically (GCRA: slot = max(now,
    stored); stored = slot + interval), reading the time from Redis so that
    process clocks never matter. The key expires once its schedule is idle.
    """

    def __init__(self, redis: RedisPool | str, key: str, rate: float) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        super().__init__(redis)
        self.interval = 1.0 / rate
        self._interval_us = max(1, round(1_000_000 / rate))
        self.redis_key = RATE_PREFIX + _digest(key)
        self.free_key = FREE_PREFIX + _digest(key)
        self._reserve = self._redis.register_script(_RESERVE)
        self._release = self._redis.register_script(_RELEASE)
        self._penalize = self._redis.register_script(_PENALIZE)

    async def reserve(self) -> Grant:
        """Reserve the next slot without waiting for it."""
        wait_us, slot_us = await self._run(
            self._reserve(keys=[self.redis_key, self.free_key], args=[self._interval_us])
        )
        return Grant(slot=int(slot_us) / 1e6, wait=int(wait_us) / 1e6, slot_us=int(slot_us))

    async def give_back(self, grant: Grant) -> None:
        """Return an unused slot (its waiter was cancelled) to the shared schedule."""
        await self._run(self._release(keys=[self.redis_key, self.free_key], args=[grant.slot_us, self._interval_us]))

    async def acquire(self) -> None:
        grant = await self.reserve()
        if grant.wait <= 0:
            return
        try:
            await anyio.sleep(grant.wait)
        except anyio.get_cancelled_exc_class():
            # Redis gone: the slot expires with the key anyway.
            with anyio.CancelScope(shield=True), anyio.move_on_after(2), contextlib.suppress(SharedStateError):
                await self.give_back(grant)
            raise

    async def penalize(self, seconds: float) -> None:
        if seconds > 0:
            await self._run(self._penalize(keys=[self.redis_key, self.free_key], args=[round(seconds * 1_000_000)]))

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self._url!r}, key={self.redis_key!r}, rate={1 / self.interval:g})"


class RedisTokenStore(_OnPool):
    """`TokenStore` in Redis: each token lives under a hashed key for its own TTL.

    `mint_lock` makes minting single flight across processes; pass it to
    `TokenProvider(..., mint_lock=store.mint_lock)`.
    """

    def __init__(self, redis: RedisPool | str, *, lock_lease_s: float = 30.0, lock_poll_s: float = 0.05) -> None:
        super().__init__(redis)
        self._lease_s = max(0.001, lock_lease_s)
        self._poll_s = lock_poll_s
        self._cad = self._redis.register_script(_COMPARE_AND_DELETE)

    @staticmethod
    def redis_key(key: str) -> str:
        return TOKEN_PREFIX + _digest(key)

    async def get(self, key: str) -> str | None:
        value = await self._run(self._redis.get(self.redis_key(key)))
        return None if value is None else str(value)

    async def put(self, key: str, token: str, ttl_s: float) -> None:
        ttl_ms = round(ttl_s * 1000)
        if ttl_ms < 1:  # already expired, as LocalTokenStore would treat it
            await self._run(self._redis.delete(self.redis_key(key)))
        else:
            await self._run(self._redis.set(self.redis_key(key), token, px=ttl_ms))

    async def discard(self, key: str, token: str) -> None:
        await self._run(self._cad(keys=[self.redis_key(key)], args=[token]))

    @asynccontextmanager
    async def mint_lock(self, key: str) -> AsyncIterator[None]:
        """Hold a Redis lock (redis-py's `Lock`: SET NX PX with an owner token) while minting for `key`.

        Waiters poll until the holder is done, then find its token in the store. A holder
        that died frees the lock after the lease; a waiter that waited a whole lease goes
        ahead without it rather than fail.
        """
        from redis.exceptions import LockNotOwnedError

        lock = self._redis.lock(
            LOCK_PREFIX + _digest(key),
            timeout=self._lease_s,
            sleep=self._poll_s,
            blocking_timeout=self._lease_s,
            thread_local=False,
        )
        held = await self._run(lock.acquire())
        if not held:
            log.warning("token mint lock still busy after %.0f s; minting without it", self._lease_s)
        try:
            yield
        finally:
            if held:
                # A lease that ran out mid-mint was freed already (maybe taken by another process).
                with anyio.CancelScope(shield=True), contextlib.suppress(LockNotOwnedError):
                    await self._run(lock.release())


class RedisReservations(_OnPool):
    """The duplicate guard's reservations (service/guard.py `Reservations`) in Redis, so that
    every replica sees every other's creates: a claim is one SET NX PX."""

    def __init__(self, redis: RedisPool | str) -> None:
        super().__init__(redis)
        self._cad = self._redis.register_script(_COMPARE_AND_DELETE)

    @staticmethod
    def redis_key(key: str) -> str:
        return DUP_PREFIX + _digest(key)

    async def claim(self, key: str, value: str, ttl_s: float) -> str | None:
        name = self.redis_key(key)
        px = max(1, round(ttl_s * 1000))
        while True:  # NX failed but the holder expired before GET: claim again
            if await self._run(self._redis.set(name, value, nx=True, px=px)):
                return None
            held = await self._run(self._redis.get(name))
            if held is not None:
                return str(held)

    async def get(self, key: str) -> str | None:
        value = await self._run(self._redis.get(self.redis_key(key)))
        return None if value is None else str(value)

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        await self._run(self._redis.set(self.redis_key(key), value, px=max(1, round(ttl_s * 1000))))

    async def release(self, key: str, value: str) -> None:
        await self._run(self._cad(keys=[self.redis_key(key)], args=[value]))


def redis_pool(settings: Settings) -> RedisPool | None:
    """The process's one Redis pool when INVOICE_MCP_REDIS_URL is set, else None (state in memory).

    Nothing connects here; the first use raises SharedStateError if Redis is
    unreachable (call `ping()` to check at start-up).
    """
    if settings.redis_url is None:
        return None
    return RedisPool(settings.redis_url.get_secret_value())
