"""Load: 200 concurrent tool calls from one client over stdio, against a sandbox that enforces the
API's 5 requests/second limit.

Every call must complete (or fail cleanly), no 429 may reach the model, the upstream request
rate must never exceed the limit (the sandbox, which enforces it, never answers 429), and a single
token request must serve the whole burst. The mix is chosen so caching does its job: list chunks
share upstream pages and the customer directory, the rest needs one request per call.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from invoice_mcp.sandbox import Sandbox

from .conftest import new_sandbox, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALLS = 200
RATE = 5.0


@pytest.fixture
def limited() -> Iterator[Sandbox]:
    sb = new_sandbox(rate_limit=RATE)
    sb.start()
    yield sb
    sb.stop()


def workload(sb: Sandbox) -> list[tuple[str, dict[str, Any]]]:
    visible = sb.invoices(include_archived=False)
    customers = sb.customers()
    ids = [i["id"] for i in visible[:6]] + [i["invoice_number"] for i in visible[6:8]]
    names = [c["name"].split()[0] for c in customers[:8]]
    lists = [{"limit": 10}, {"limit": 25}, {"limit": 5, "status": "open"}, {"limit": 5, "status": "overdue"}]
    summaries = [{"customer_id": c["id"], "status": "overdue"} for c in customers[:8]]
    calls: list[tuple[str, dict[str, Any]]] = []
    for i in range(CALLS):
        match i % 5:
            case 0 | 1:
                calls.append(("list_invoices", lists[i % len(lists)]))
            case 2:
                calls.append(("get_invoice", {"invoice": ids[i % len(ids)]}))
            case 3:
                calls.append(("find_customers", {"name": names[i % len(names)]}))
            case _:
                calls.append(("summarize_invoices", summaries[i % len(summaries)]))
    return calls


def peak_rate(times: list[float], window: int) -> float:
    """Highest request rate over any `window` consecutive intervals between arrivals."""
    spans = [times[i + window] - times[i] for i in range(len(times) - window)]
    return round(window / min(spans), 2) if spans else 0.0


async def test_200_concurrent_calls_over_stdio_hold_the_rate_limit(
    limited: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AP_CLIENT_ID": limited.config.client_id,
        "AP_CLIENT_SECRET": limited.config.client_secret,
        "AP_BASE_URL": limited.base_url,
        "AP_RATE_LIMIT": str(RATE),
        "AP_TIMEOUT_S": "10",
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "invoice_mcp"], env=env, cwd=tempfile.gettempdir()
    )
    calls = workload(limited)
    results: list[Any] = [None] * len(calls)
    async with Client(params) as c:
        await c.list_tools()
        started = time.monotonic()

        async def one(i: int, tool: str, args: dict[str, Any]) -> None:
            results[i] = await c.call_tool(tool, args)

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for i, (tool, args) in enumerate(calls):
                    tg.start_soon(one, i, tool, args)
        elapsed = time.monotonic() - started

    texts = [text_of(r) for r in results]
    failed = [(calls[i], t[:160]) for i, (r, t) in enumerate(zip(results, texts, strict=True)) if r.is_error]
    assert not [t for t in texts if "Traceback" in t], "a call crashed"
    assert not [t for t in texts if "rate limit" in t.lower() or "429" in t or "too many" in t.lower()]
    assert not failed, f"{len(failed)} calls failed: {failed[:3]}"
    assert all(r.structured_content is not None for r in results)

    log = limited.requests()
    times = [r.t for r in log]
    # The sandbox applies the API's documented limit (a token bucket of RATE, refilled RATE/s) on its
    # own arrival clock: not one 429 is the exact verdict that the rate held (no wall-clock margin).
    assert [r.status for r in log if r.status == 429] == [], "the API never had to say 429"
    window = int(RATE)
    assert limited.token_requests == 1, "one token served the whole burst"
    record_property(
        "load",
        {
            "calls": len(calls),
            "ok": len(calls) - len(failed),
            "upstream_requests": len(log),
            "max_upstream_per_s": peak_rate(times, window),
            "rate_limit": RATE,
            "429_to_model": 0,
            "429_upstream": 0,
            "token_requests": limited.token_requests,
            "seconds": round(elapsed, 1),
        },
    )
