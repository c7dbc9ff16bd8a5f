"""The one single-flight cache: a bounded TTL cache whose misses are loaded once, however many
callers ask for the same key at the same moment.

Every cache of API answers (invoice and payment pages, an invoice's payments, the customer
directory, completion suggestions) is one of these, so a burst of identical calls costs one
upstream request and the lock bookkeeping lives in one place."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio
from cachetools import TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlightCache(Generic[K, V]):
    def __init__(self, maxsize: int, ttl_s: float, *, timer: Callable[[], float] = time.monotonic) -> None:
        self._values: TTLCache[K, V] = TTLCache(maxsize, ttl_s, timer=timer)
        self._loading: dict[K, anyio.Lock] = {}

    @property
    def loading(self) -> int:
        """Keys being loaded right now (each by exactly one caller)."""
        return len(self._loading)

    def waiting(self, key: K) -> int:
        """Callers waiting for the load of `key` already under way (0 when none is)."""
        lock = self._loading.get(key)
        return 0 if lock is None else lock.statistics().tasks_waiting

    def clear(self) -> None:
        """Forget every value (after a write, cached answers may be stale)."""
        self._values.clear()

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `key`, else `load()`'s, stored; concurrent misses share one load.
        A failed load stores nothing, and the next caller tries again. (None is never a value: it
        means a miss.)"""
        hit = self._values.get(key)
        if hit is not None:
            return hit
        lock = self._loading.setdefault(key, anyio.Lock())
        try:
            async with lock:
                hit = self._values.get(key)
                if hit is not None:
                    return hit
                value = await load()
                self._values[key] = value
                return value
        finally:
            if not lock.locked() and self._loading.get(key) is lock:
                del self._loading[key]
