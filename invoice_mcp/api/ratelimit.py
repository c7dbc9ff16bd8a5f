"""Process-wide request pacing for one API key (5 requests/second by default).

Requests are spread evenly (one slot every 1/rate seconds) rather than sent in
bursts, which is what the API's docs ask for and what keeps 429s away. A 429
pushes every caller back, not just the one that hit it.

A caller cancelled while it waits for its slot gives the slot back: 300 calls
abandoned by their clients must not make the next caller wait a minute.

Not aiolimiter: its leaky bucket has no way to hold every caller back after a 429,
reads the event loop's clock (the fault tests drive this one on virtual time), and
the Redis limiter shares this slot schedule across processes.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Protocol

import anyio


class RateLimiter(Protocol):
    async def acquire(self) -> None:
        """Wait for this caller's slot (a cancelled wait returns the slot)."""

    async def penalize(self, seconds: float) -> None:
        """The API said 'slow down': no slot is handed out for `seconds`."""


class LocalRateLimiter:
    """Slot reservation: each caller takes the next free slot, then sleeps until it.

    No lock is needed: reserving or returning a slot never awaits, and asyncio
    runs one coroutine at a time. Returned slots (of cancelled waiters) are
    handed out again before new ones, so spacing stays exact: the schedule
    shrinks back when the last slot comes back, and a hole in the middle is
    filled by the next caller.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0 or rate == float("inf"):
            raise ValueError("rate must be a positive finite number")
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0
        self._free: list[float] = []  # returned future slots, ascending
        self._eps = self.interval * 1e-6

    @property
    def next_slot(self) -> float:
        """The earliest slot a new caller would get (on this limiter's clock)."""
        now = self._clock()
        future = [s for s in self._free if s >= now]
        return future[0] if future else max(now, self._next)

    def take(self) -> float:
        """Reserve a slot; return it (on the limiter's clock)."""
        now = self._clock()
        while self._free and self._free[0] < now:  # holes that time has passed: gone
            self._free.pop(0)
        if self._free:
            return self._free.pop(0)
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot

    def reserve(self) -> float:
        """Reserve the next slot; return how long to wait for it."""
        return max(0.0, self.take() - self._clock())

    def give_back(self, slot: float) -> None:
        """Return an unused slot (its waiter was cancelled). Past slots are spent."""
        if slot < self._clock():
            return
        if abs(slot - (self._next - self.interval)) <= self._eps:
            self._next = slot
            # Holes just below the new end close up too.
            while self._free and abs(self._free[-1] - (self._next - self.interval)) <= self._eps:
                self._next = self._free.pop()
        else:
            bisect.insort(self._free, slot)

    async def acquire(self) -> None:
        slot = self.take()
        delay = slot - self._clock()
        if delay <= 0:
            return
        try:
            await anyio.sleep(delay)
        except anyio.get_cancelled_exc_class():
            self.give_back(slot)
            raise

    async def penalize(self, seconds: float) -> None:
        until = self._clock() + seconds
        self._next = max(self._next, until)
        self._free = [s for s in self._free if s >= until]


class StrangerGate:
    """A separate, bounded budget for token requests whose credentials are not yet known good.

    A gateway cannot tell a wrong secret from a new tenant's right one before the API answers,
    and the API's 5 requests/s are per client id, so refused token requests would otherwise
    queue on the owner's own schedule (100 wrong secrets: the owner's next call waits 20 s).
    Such requests first pass this gate: at most `rate` per second per client id, at most
    `max_waiting` in the gate at once; a request beyond that is refused at once, with no API request.
    Only then do they take a slot on the key's schedule, so strangers hold at most `rate` of
    its slots per second, whatever their number.
    """

    def __init__(self, rate: float, max_waiting: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_waiting < 1:
            raise ValueError("max_waiting must be at least 1")
        self.schedule = LocalRateLimiter(rate, clock=clock)
        self.max_waiting = max_waiting
        self.waiting = 0
        self.refused = 0

    async def acquire(self) -> None:
        """Wait for a slot of the gate; raise GateFull (retry-after seconds) when too many wait."""
        if self.waiting >= self.max_waiting:
            self.refused += 1
            raise GateFull(self.schedule.interval * self.max_waiting)
        self.waiting += 1
        try:
            await self.schedule.acquire()
        finally:
            self.waiting -= 1


class GateFull(Exception):
    """Too many token requests with unverified credentials are waiting for this client id."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry in {retry_after:.1f} s")
        self.retry_after = retry_after
