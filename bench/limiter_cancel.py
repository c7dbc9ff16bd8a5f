"""Cancelled calls and the rate limiter: N calls queued at 5 req/s, cancelled after
1 s, then one more call. How long does it wait, and what does the limiter's schedule say?

Runs the real APIClient against the embedded sandbox on 127.0.0.1 (rate limit 5/s on both sides),
once with the local limiter and once with the Redis limiter (if redis-server is on PATH).

Run: .venv/bin/python bench/limiter_cancel.py [--calls 300]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time

import anyio
from _common import sandbox, settings_for

from invoice_mcp.api.client import APIClient
from invoice_mcp.api.ratelimit import LocalRateLimiter, RateLimiter


async def run(limiter: RateLimiter, calls: int) -> tuple[int, float, int]:
    with sandbox(invoices=300, rate_limit=5.0) as sb:
        settings = settings_for(sb, rate_limit=5.0)
        async with APIClient(settings, limiter=limiter) as client:
            await client.list_invoices(limit=1)  # warm: token minted
            before = len(sb.requests())
            with anyio.move_on_after(1.0):
                async with anyio.create_task_group() as tg:
                    for i in range(calls):
                        tg.start_soon(lambda i=i: client.list_invoices(limit=1, invoice_number=f"INV-{i}"))
            sent = len(sb.requests()) - before
            t = time.monotonic()
            await client.list_invoices(limit=2)
            waited = time.monotonic() - t
            return sent, waited, sum(1 for r in sb.requests() if r.status == 429)


def redis_url() -> tuple[subprocess.Popen[bytes], str] | None:
    exe = shutil.which("redis-server")
    if not exe:
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    probe = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(200):
        try:
            if probe.ping():
                return proc, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    n = min(ap.parse_args().calls, 2000)
    rows = []
    sent, waited, r429 = anyio.run(run, LocalRateLimiter(5.0), n)
    rows.append(("local", n, sent, f"{waited:.2f}", r429))
    started = redis_url()
    if started is not None:
        proc, url = started
        try:
            from invoice_mcp.api.shared_state import RedisRateLimiter

            sent, waited, r429 = anyio.run(run, RedisRateLimiter(url, "bench|cancel", 5.0), n)
            rows.append(("redis", n, sent, f"{waited:.2f}", r429))
        finally:
            proc.terminate()
            proc.wait()
    print("| limiter | calls queued | sent before cancel (1 s) | next call waited s | 429s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print(f"\n(without slot return the next call would wait about {n / 5:.0f} s: {n} slots at 5/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
