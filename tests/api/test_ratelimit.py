"""The local limiter on its own schedule (injected clock): spacing, penalties, cancelled waiters."""

from __future__ import annotations

import itertools
import random

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from invoice_mcp.api.ratelimit import LocalRateLimiter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_slots_evenly_spaced() -> None:
    clock = Clock()
    lim = LocalRateLimiter(5, clock=clock)
    slots = [lim.take() for _ in range(6)]
    assert [s - 1000.0 for s in slots] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_last_slot_returned_shrinks_schedule_and_holes_are_refilled_in_order() -> None:
    clock = Clock()
    lim = LocalRateLimiter(5, clock=clock)
    s = [lim.take() for _ in range(5)]  # 0, .2, .4, .6, .8
    lim.give_back(s[1])  # a hole in the middle
    lim.give_back(s[2])
    assert lim.take() == s[1] and lim.take() == s[2]  # holes first, earliest first
    assert lim.take() == pytest.approx(s[4] + 0.2)  # then the end of the schedule
    lim.give_back(s[4] + 0.2)
    assert lim.next_slot == pytest.approx(s[4] + 0.2)


def test_spent_slots_are_not_returned_and_passed_holes_expire() -> None:
    clock = Clock()
    lim = LocalRateLimiter(5, clock=clock)
    s = [lim.take() for _ in range(4)]
    lim.give_back(s[1])  # hole at +0.2
    clock.t += 0.3  # the hole's time has passed: handing it out now would burst
    assert lim.take() == pytest.approx(s[3] + 0.2)
    lim.give_back(s[0])  # in the past: spent, nothing changes
    assert lim.next_slot == pytest.approx(s[3] + 0.4)


def test_penalty_drops_holes_inside_it() -> None:
    clock = Clock()
    lim = LocalRateLimiter(5, clock=clock)
    s = [lim.take() for _ in range(5)]
    lim.give_back(s[2])
    anyio.run(lim.penalize, 2.0)
    assert lim.take() == pytest.approx(clock.t + 2.0)


async def test_300_cancelled_waiters_give_their_slots_back() -> None:
    """300 calls cancelled while waiting once made the next call wait 60 s."""
    clock = Clock()
    lim = LocalRateLimiter(5, clock=clock)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(lim.acquire)
            await wait_all_tasks_blocked()
            assert lim.next_slot == pytest.approx(clock.t + 300 * 0.2)  # the backlog is real
            scope.cancel()
    # The first waiter's slot was "now" and it went through; the other 299 came back,
    # so the next caller is due one interval after it, not 60 s later.
    assert lim.next_slot == pytest.approx(clock.t + 0.2)
    assert lim.reserve() == pytest.approx(0.2)
    assert lim.reserve() == pytest.approx(0.4)  # and spacing continues from there


async def test_cancelled_waiters_in_any_order_leave_survivors_spaced() -> None:
    clock = Clock()
    lim = LocalRateLimiter(10, clock=clock)
    scopes: list[anyio.CancelScope] = []
    slots: list[float] = []

    async def waiter(scope: anyio.CancelScope) -> None:
        with scope:
            await lim.acquire()

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            scopes.append(anyio.CancelScope())
            tg.start_soon(waiter, scopes[-1])
        await wait_all_tasks_blocked()
        rng = random.Random(7)
        doomed = rng.sample(range(1, 50), 30)  # waiter 0 went through at once
        for i in doomed:
            scopes[i].cancel()
        await wait_all_tasks_blocked()
        # 20 waiters still hold slots 0..49 (minus the holes); the next 30 callers fill the holes
        slots = [lim.take() for _ in range(30)]
        tg.cancel_scope.cancel()
    expected = sorted(clock.t + 0.1 * i for i in doomed)
    assert slots == pytest.approx(expected)  # exactly the returned ones, earliest first
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(sorted(slots)))
