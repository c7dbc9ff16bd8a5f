"""OAuth2 client-credentials tokens: cached, minted once however many callers ask.

The API has no refresh token; a token lives `expires_in` seconds (3600 today).
It is cached under (base URL, client id, digest of the secret) until a safety margin before expiry,
and concurrent cold callers share a single token request (single flight).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import anyio
from cachetools import TLRUCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedToken:
    value: str
    expires_at: float  # time.monotonic() deadline, margin already taken off

    def __repr__(self) -> str:  # never print the token
        return f"CachedToken(expires_at={self.expires_at:.0f})"


class TokenStore(Protocol):
    """Where tokens live: this process (default) or Redis (shared by replicas)."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, token: str, ttl_s: float) -> None: ...

    async def discard(self, key: str, token: str) -> None:
        """Forget `token` if it is still the cached one (a newer token stays)."""


def _token_expiry(_key: str, value: CachedToken, _now: float) -> float:
    return value.expires_at


class LocalTokenStore:
    """A `cachetools` TTL cache whose per-entry lifetime is the token's own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cache: TLRUCache[str, CachedToken] = TLRUCache(maxsize=64, ttu=_token_expiry, timer=clock)

    async def get(self, key: str) -> str | None:
        hit = self._cache.get(key)
        return hit.value if hit is not None else None

    async def put(self, key: str, token: str, ttl_s: float) -> None:
        self._cache[key] = CachedToken(token, self._clock() + ttl_s)

    async def discard(self, key: str, token: str) -> None:
        hit = self._cache.get(key)
        if hit is not None and hit.value == token:
            del self._cache[key]


def basic_auth(client_id: str, client_secret: str) -> str:
    raw = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def cache_ttl(expires_in: float) -> float:
    """Lifetime to cache a token for: a margin before the API's expiry
    (60 s for hour-long tokens, a tenth of very short ones)."""
    return max(0.0, expires_in - min(60.0, expires_in / 10))


Minter = Callable[[], Awaitable[tuple[str, float]]]
"""Performs the token request; returns (access_token, expires_in)."""

MintLock = Callable[[str], AbstractAsyncContextManager[object]]
"""Cross-process exclusion around minting for a key (e.g. `RedisTokenStore.mint_lock`)."""


class TokenProvider:
    def __init__(
        self, key: str, mint: Minter, store: TokenStore | None = None, *, mint_lock: MintLock | None = None
    ) -> None:
        self._key = key
        self._mint = mint
        self._store: TokenStore = store if store is not None else LocalTokenStore()
        self._lock = anyio.Lock()
        self._mint_lock = mint_lock
        self.verified = False
        """True once these credentials have yielded a token: the API accepted them (here, or on a
        replica sharing the token store). A gateway keeps unverified credentials apart."""

    async def get(self) -> str:
        token = await self._store.get(self._key)
        if token is not None:
            self.verified = True
            return token
        # Single flight: latecomers (in this process, or others via mint_lock) find the fresh token.
        async with self._lock, self._mint_lock(self._key) if self._mint_lock else nullcontext():
            token = await self._store.get(self._key)
            if token is not None:
                self.verified = True
                return token
            token, expires_in = await self._mint()
            self.verified = True
            await self._store.put(self._key, token, cache_ttl(expires_in))
            log.debug("minted access token (expires_in=%ss)", int(expires_in))
            return token

    async def invalidate(self, token: str) -> None:
        await self._store.discard(self._key, token)
