"""Shared limiter and token store against a real redis-server on loopback.

Needs `redis-server` on PATH (Debian: apt-get install -y redis-server); the
tests fail rather than skip without it, so CI cannot pass by running nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
import traceback
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from invoice_mcp.api.auth import TokenProvider
from invoice_mcp.api.ratelimit import LocalRateLimiter
from invoice_mcp.api.settings import Settings, SettingsError
from invoice_mcp.api.shared_state import (
    LOCK_PREFIX,
    RATE_PREFIX,
    TOKEN_PREFIX,
    Grant,
    RedisRateLimiter,
    RedisReservations,
    RedisTokenStore,
    SharedStateError,
    redact_url,
    redis_pool,
)
from invoice_mcp.server.accounts import Accounts
from invoice_mcp.service.guard import LocalReservations
from tests.procs import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TOL = 0.02  # clock/rounding slack and scheduling jitter on a loaded 2-core machine, seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def probe(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def _redis_now(client: aioredis.Redis) -> float:
    secs, usecs = await client.time()
    return float(secs) + usecs / 1e6


def _spy(monkeypatch: pytest.MonkeyPatch, limiter: RedisRateLimiter, grants: list[Grant]) -> None:
    """Record every slot the limiter reserves (acquire goes through reserve)."""
    reserve = limiter.reserve

    async def recording() -> Grant:
        grant = await reserve()
        grants.append(grant)
        return grant

    monkeypatch.setattr(limiter, "reserve", recording)


def _assert_spaced(slots: list[float], interval: float, count: int) -> None:
    slots = sorted(slots)
    assert len(slots) == count
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= interval - TOL, gaps
    assert slots[-1] - slots[0] >= (count - 1) * interval - TOL


@pytest.mark.anyio
async def test_two_limiters_share_one_schedule(
    redis_url: str, probe: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"base|client-{uuid.uuid4()}"
    a, b = RedisRateLimiter(redis_url, key, 20), RedisRateLimiter(redis_url, key, 20)  # two connection pools
    grants: list[Grant] = []
    _spy(monkeypatch, a, grants)
    _spy(monkeypatch, b, grants)
    returned: list[float] = []  # Redis time at which each acquire returned

    async def one(limiter: RedisRateLimiter) -> None:
        await limiter.acquire()
        returned.append(await _redis_now(probe))

    async with anyio.create_task_group() as tg:  # all 20 reserve at once, 10 per instance
        for i in range(20):
            tg.start_soon(one, a if i % 2 else b)
    await a.aclose()
    await b.aclose()

    slots = sorted(g.slot for g in grants)
    _assert_spaced(slots, 0.05, 20)
    # Each caller slept until its own slot, so the k-th return is no earlier than the k-th slot.
    for slot, back in zip(slots, sorted(returned), strict=True):
        assert back >= slot - TOL
    assert max(returned) - slots[0] >= 0.95 - TOL


@pytest.mark.anyio
async def test_acquire_waits_until_its_slot(redis_url: str, probe: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis_url, f"k-{uuid.uuid4()}", 10)
    first = await limiter.reserve()
    assert first.wait == 0
    await limiter.acquire()  # the next slot is 0.1 s after `first`
    assert await _redis_now(probe) >= first.slot + 0.1 - TOL
    await limiter.aclose()


@pytest.mark.anyio
async def test_penalize_is_seen_by_other_instances(redis_url: str, probe: aioredis.Redis) -> None:
    key = f"k-{uuid.uuid4()}"
    a, b = RedisRateLimiter(redis_url, key, 5), RedisRateLimiter(redis_url, key, 5)
    before = await _redis_now(probe)
    await a.penalize(0.5)
    after = await _redis_now(probe)
    g1 = await b.reserve()
    # On the Redis clock: the first slot is 0.5 s after the moment of the penalty.
    assert before + 0.5 - 1e-6 <= g1.slot <= after + 0.5 + 1e-6
    await a.penalize(0.1)  # a shorter penalty never pulls the schedule forward
    g2 = await b.reserve()
    assert g2.slot - g1.slot == pytest.approx(0.2, abs=1e-6)
    await a.aclose()
    await b.aclose()


@pytest.mark.anyio
async def test_idle_limiter_key_expires(redis_url: str, probe: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis_url, f"k-{uuid.uuid4()}", 5)
    await limiter.reserve()
    pttl = await probe.pttl(limiter.redis_key)
    assert 1000 < pttl <= 1200  # the 0.2 s schedule plus a 1 s grace
    await limiter.aclose()


@pytest.mark.anyio
async def test_token_store_put_get_ttl(redis_url: str, probe: aioredis.Redis) -> None:
    store = RedisTokenStore(redis_url)
    key = f"base|client-{uuid.uuid4()}"
    assert await store.get(key) is None
    await store.put(key, "tok-1", 30)
    assert await store.get(key) == "tok-1"
    assert 29_000 < await probe.pttl(store.redis_key(key)) <= 30_000

    await store.put(key, "tok-2", 0.05)
    deadline = anyio.current_time() + 2
    while await store.get(key) is not None:  # bounded poll for Redis expiry
        assert anyio.current_time() < deadline, "token did not expire"
        await anyio.sleep(0.01)

    await store.put(key, "tok-3", 30)
    await store.put(key, "tok-4", 0)  # an already-expired token replaces and is gone
    assert await store.get(key) is None
    await store.aclose()


@pytest.mark.anyio
async def test_discard_only_deletes_the_matching_token(redis_url: str) -> None:
    store, other = RedisTokenStore(redis_url), RedisTokenStore(redis_url)
    key = f"k-{uuid.uuid4()}"
    await store.put(key, "new", 30)
    await other.discard(key, "old")  # a stale 401 must not evict the fresh token
    assert await store.get(key) == "new"
    await other.discard(key, "new")
    assert await store.get(key) is None
    await store.aclose()
    await other.aclose()


@pytest.mark.anyio
async def test_redis_keys_and_reprs_hold_no_secrets(redis_url: str, probe: aioredis.Redis) -> None:
    client_id = f"CLIENTID{uuid.uuid4().hex}"
    token = f"TOKEN{uuid.uuid4().hex}"
    key = f"https://api.example|{client_id}"
    limiter, store = RedisRateLimiter(redis_url, key, 5), RedisTokenStore(redis_url)
    await limiter.acquire()
    await store.put(key, token, 30)
    names = [k async for k in probe.scan_iter()]
    assert RATE_PREFIX + limiter.redis_key.removeprefix(RATE_PREFIX) in names
    assert store.redis_key(key) in names
    assert any(n.startswith(TOKEN_PREFIX) for n in names)
    for name in names:
        assert client_id not in name and token not in name
    assert token not in repr(store) and client_id not in repr(limiter)
    await limiter.aclose()
    await store.aclose()


def _settings(redis_url: str | None) -> Settings:
    return Settings(
        client_id="cid",
        client_secret=SecretStr("secret"),
        redis_url=SecretStr(redis_url) if redis_url else None,
    )


def test_without_a_url_the_accounts_keep_their_state_in_memory() -> None:
    s = _settings(None)
    accounts = Accounts(s)
    assert redis_pool(s) is None and accounts.redis() is None and accounts.token_store() is None
    assert isinstance(accounts.rate_limiter(s), LocalRateLimiter)
    assert isinstance(accounts.reservations(), LocalReservations)


@pytest.mark.anyio
async def test_one_redis_pool_per_process(redis_url: str) -> None:
    """Every account's limiter, the token store and the duplicate guard of a process share one
    pool; a store on it closing (an evicted tenant's limiter) leaves it open for the rest."""
    s = _settings(redis_url)
    other = s.model_copy(update={"client_id": "other"})
    accounts = Accounts(s, many=True)
    pool = accounts.redis()
    a, b = accounts.service(s), accounts.service(other)
    store, reservations = accounts.token_store(), accounts.reservations()
    parts = [a.client.limiter, b.client.limiter, store, reservations, a.writer.reservations]
    assert all(isinstance(p, RedisRateLimiter | RedisTokenStore | RedisReservations) for p in parts)
    assert {id(getattr(p, "pool", None)) for p in parts} == {id(pool)} and pool is not None
    assert a.client.tokens._store is b.client.tokens._store is store
    assert isinstance(a.client.limiter, RedisRateLimiter) and isinstance(store, RedisTokenStore)
    await a.client.limiter.acquire()
    await a.client.limiter.aclose()  # not its pool to close
    await store.put("k", "t", 1)
    assert await store.get("k") == "t"
    await a.client.aclose()
    await b.client.aclose()
    await accounts.aclose()
    assert accounts.redis() is not pool  # made again on next use


@pytest.mark.anyio
async def test_unreachable_redis_names_the_variable_without_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    accounts = Accounts(_settings(url))
    limiter, store = accounts.rate_limiter(_settings(url)), accounts.token_store()
    assert isinstance(limiter, RedisRateLimiter) and isinstance(store, RedisTokenStore)
    for op in (limiter.acquire(), store.get("k"), limiter.ping()):
        with anyio.fail_after(5), pytest.raises(SharedStateError) as info:
            await op
        text = "".join(traceback.format_exception(info.value))
        assert "INVOICE_MCP_REDIS_URL" in str(info.value)
        assert "hunter2" not in text
    assert "hunter2" not in repr(limiter) + repr(store) + repr(accounts.redis())
    await accounts.aclose()


def test_redact_url() -> None:
    assert redact_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("rediss://user:p%40ss@h/1?password=x&db=2") == "rediss://user:***@h/1?password=***&db=2"
    assert redact_url("redis://h:6379") == "redis://h:6379"


@pytest.mark.anyio
async def test_mint_is_single_flight_across_stores(redis_url: str, probe: aioredis.Redis) -> None:
    key = f"k-{uuid.uuid4()}"
    minted: list[str] = []

    async def mint() -> tuple[str, float]:
        token = f"tok-{len(minted)}"
        minted.append(token)
        await anyio.sleep(0.2)  # a slow token endpoint, so the callers overlap
        return token, 3600.0

    async def race(use_lock: bool, key: str) -> list[str]:
        stores = [RedisTokenStore(redis_url, lock_poll_s=0.01) for _ in range(3)]  # three "processes"
        providers = [TokenProvider(key, mint, s, mint_lock=s.mint_lock if use_lock else None) for s in stores]
        got: list[str] = []

        async def one(p: TokenProvider) -> None:
            got.append(await p.get())

        async with anyio.create_task_group() as tg:
            for p in providers:
                tg.start_soon(one, p)
        for s in stores:
            await s.aclose()
        return got

    await race(False, key + "-nolock")
    assert len(minted) == 3  # control: without the lock every process mints
    minted.clear()
    got = await race(True, key)
    assert len(minted) == 1 and got == [minted[0]] * 3
    assert [k async for k in probe.scan_iter("invoice-mcp:mint:*")] == []  # lock released


@pytest.mark.anyio
async def test_mint_lock_released_when_mint_fails(redis_url: str, probe: aioredis.Redis) -> None:
    store = RedisTokenStore(redis_url)

    async def broken() -> tuple[str, float]:
        raise RuntimeError("403")

    with pytest.raises(RuntimeError):
        await TokenProvider("k-fail", broken, store, mint_lock=store.mint_lock).get()
    assert [k async for k in probe.scan_iter("invoice-mcp:mint:*")] == []
    await store.aclose()


def _lock_name(key: str) -> str:
    return LOCK_PREFIX + hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.anyio
async def test_mint_lock_never_frees_another_holders_lock(redis_url: str, probe: aioredis.Redis) -> None:
    """Our lease ran out mid-mint and another process took the lock: ending ours leaves theirs."""
    key = f"k-{uuid.uuid4()}"
    store = RedisTokenStore(redis_url)

    async def mint() -> tuple[str, float]:
        await probe.set(_lock_name(key), "another-process", px=60_000)  # our lease gone, theirs now
        return "tok", 3600.0

    assert await TokenProvider(key, mint, store, mint_lock=store.mint_lock).get() == "tok"
    assert await probe.get(_lock_name(key)) == "another-process"
    await store.aclose()


@pytest.mark.anyio
async def test_a_waiter_mints_without_the_lock_after_a_whole_lease(redis_url: str, probe: aioredis.Redis) -> None:
    """A holder that died holding the lock (and a lease that outlives the wait): the waiter goes
    ahead after one lease rather than fail the call."""
    key = f"k-{uuid.uuid4()}"
    await probe.set(_lock_name(key), "a-process-that-died", px=60_000)
    store = RedisTokenStore(redis_url, lock_lease_s=0.2, lock_poll_s=0.02)

    async def mint() -> tuple[str, float]:
        return "tok", 3600.0

    with anyio.fail_after(5):
        assert await TokenProvider(key, mint, store, mint_lock=store.mint_lock).get() == "tok"
    assert await probe.get(_lock_name(key)) == "a-process-that-died"  # not ours to free
    await store.aclose()


_WORKER = """
import sys
import anyio
import redis.asyncio as aioredis
from invoice_mcp.api.shared_state import RedisRateLimiter

async def main(url: str, key: str, n: int) -> None:
    limiter = RedisRateLimiter(url, key, 10.0)
    clock = aioredis.Redis.from_url(url)
    await limiter.ping()
    slots = []
    reserve = limiter.reserve
    async def recording():
        grant = await reserve()
        slots.append(grant.slot)
        return grant
    limiter.reserve = recording
    print("ready", flush=True)
    sys.stdin.readline()  # go: both processes start together
    for _ in range(n):
        await limiter.acquire()
        secs, usecs = await clock.time()
        print(f"{slots[-1]:.6f} {secs + usecs / 1e6:.6f}", flush=True)
    await limiter.aclose()
    await clock.aclose()

anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
"""


def test_two_processes_share_the_limit(redis_url: str) -> None:
    n, key = 5, f"k-{uuid.uuid4()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, key, str(n)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line == "ready\n", (line, p.stderr.read() if p.stderr else "")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=20) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    grants: list[tuple[float, float]] = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        grants += [(float(s), float(t)) for s, t in (line.split() for line in out.splitlines())]
    _assert_spaced([slot for slot, _ in grants], 0.1, 2 * n)
    for slot, granted in grants:
        assert granted >= slot - TOL  # each process really waited for its slot
    # Both processes were served throughout, not one after the other.
    firsts = sorted(min(float(line.split()[0]) for line in out.splitlines()) for out, _ in outputs)
    assert firsts[1] - firsts[0] < 0.5


def test_missing_redis_package_is_a_clear_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)  # makes `import redis.asyncio` fail
    with pytest.raises(SettingsError, match=r"pip install 'invoice-mcp\[redis\]'") as info:
        Accounts(_settings("redis://127.0.0.1:6379/0")).redis()
    assert "INVOICE_MCP_REDIS_URL is set but the redis package is not installed" in str(info.value)


def test_bad_scheme_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="INVOICE_MCP_REDIS_URL") as info:
        redis_pool(_settings("http://:hunter2@127.0.0.1/0"))
    assert "hunter2" not in str(info.value)


@pytest.mark.anyio
async def test_cancelled_waiters_return_their_redis_slots(redis_url: str, probe: aioredis.Redis) -> None:
    """Issue 12 §3: 300 cancelled calls must not push the shared schedule a minute out."""
    limiter = RedisRateLimiter(redis_url, f"k-{uuid.uuid4()}", 5)
    grants: list[Grant] = []
    all_reserved = anyio.Event()
    reserve = limiter.reserve

    async def recording() -> Grant:
        grant = await reserve()
        grants.append(grant)
        if len(grants) == 300:
            all_reserved.set()
        return grant

    limiter.reserve = recording  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(limiter.acquire)
        await all_reserved.wait()
        slots = sorted(g.slot for g in grants)
        assert slots[-1] - slots[0] >= 299 * 0.2 - 1e-6  # the backlog is real: a minute of slots
        tg.cancel_scope.cancel()
    after_cancel = await _redis_now(probe)
    nxt = await reserve()
    # Waiters whose slot came before the cancellation went through (on a loaded machine, more
    # than the first); every other slot came back, so the next caller is due at most one
    # interval after the last spent slot (or now), not a minute out.
    spent = [slot for slot in slots if slot <= after_cancel]
    assert nxt.wait == 0 or nxt.slot <= max(spent) + 0.2 + 1e-6, (nxt, max(spent))
    assert nxt.slot - slots[0] < 30
    assert await probe.zcard(limiter.free_key) == 0  # the holes closed up into the schedule's end
    await limiter.aclose()


@pytest.mark.anyio
async def test_returned_redis_hole_is_handed_out_first(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url, f"k-{uuid.uuid4()}", 2)  # 0.5 s apart: holes stay in the future
    g = [await limiter.reserve() for _ in range(4)]
    await limiter.give_back(g[1])
    again = await limiter.reserve()
    assert again.slot_us == g[1].slot_us
    after = await limiter.reserve()
    assert after.slot_us == g[3].slot_us + 500_000
    await limiter.aclose()
