"""Process-wide request pacing for one API key (5 requests/second by default).

Requests are spread evenly (one slot every 1/rate seconds) rather than sent in
bursts, which is what the API's docs ask for and what keeps 429s away. A 429
pushes every caller back, not just the one that hit it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import anyio


class RateLimiter(Protocol):
    async def acquire(self) -> None:
        """Wait for this caller's slot."""

    async def penalize(self, seconds: float) -> None:
        """The API said 'slow down': no slot is handed out for `seconds`."""


class LocalRateLimiter:
    """Slot reservation: each caller takes the next free slot, then sleeps until it.

    No lock is needed: reserving a slot never awaits, and asyncio runs one
    coroutine at a time.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0

    def reserve(self) -> float:
        """Reserve the next slot; return how long to wait for it."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await anyio.sleep(delay)

    async def penalize(self, seconds: float) -> None:
        self._next = max(self._next, self._clock() + seconds)
