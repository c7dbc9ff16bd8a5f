"""Call overhead: get_invoice through a stdio MCP session against the floor.

Floor = the same GET made directly with httpx (bearer token) + an empty tool call on a minimal MCPServer over
stdio (sum of medians). Then pyinstrument on the in-process path shows where our time goes.
Run: .venv/bin/python bench/overhead.py
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from mcp import Client
from pyinstrument import Profiler
from pyinstrument.frame import Frame

from _common import (
    median,
    minimal_params,
    our_params,
    p95,
    sandbox,
    server_env,
    settings_for,
    stderr_sink,
    stdio,
    table,
    verdict,
)
from invoice_mcp.server import build_server

WARMUP = 30
ITERATIONS = 200
PROFILE_CALLS = 300
TARGET = 1.2

Timed = Callable[[], Awaitable[Any]]


async def timed(fn: Timed) -> float:
    t = time.perf_counter()
    await fn()
    return time.perf_counter() - t


async def mint(http: httpx.AsyncClient, client_id: str, secret: str) -> str:
    r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    r.raise_for_status()
    return str(r.json()["access_token"])


def _checked(res: Any) -> Any:
    if res.is_error:
        raise RuntimeError(str(res.content))
    return res


# -- pyinstrument summary -----------------------------------------------------------------------------

GROUPS = (
    ("invoice_mcp", "invoice_mcp (ours)"),
    ("/mcp_types/", "mcp-types (SDK wire models)"),
    ("/mcp/", "mcp SDK"),
    ("/pydantic", "pydantic"),
    ("/httpx/", "httpx/httpcore/h11"),
    ("/httpcore/", "httpx/httpcore/h11"),
    ("/h11/", "httpx/httpcore/h11"),
    ("/anyio/", "anyio/asyncio"),
    ("/asyncio/", "anyio/asyncio"),
    ("/logging/", "logging"),
    ("/cachetools/", "cachetools"),
)


def group_of(frame: Frame) -> str:
    path = frame.file_path or ""
    for needle, name in GROUPS:
        if needle in path:
            return name
    if frame.function in ("poll", "select") or "selectors" in path:
        return "idle (waiting on sockets)"
    return "other (stdlib/builtins)"


def walk(frame: Frame, seen: frozenset[str], acc: dict[str, Any]) -> None:
    child_time = sum(c.time for c in frame.children)
    self_t = max(0.0, frame.time - child_time)
    acc["groups"][group_of(frame)] += self_t
    key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
    if key not in seen:  # inclusive time, counted once per stack
        acc["inclusive"][key] += frame.time
    for c in frame.children:
        walk(c, seen | {key}, acc)


def profile_summary(profiler: Profiler, calls: int) -> str:
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    assert root is not None
    acc: dict[str, Any] = {"groups": defaultdict(float), "inclusive": defaultdict(float)}
    walk(root, frozenset(), acc)
    total = root.time
    busy = total - acc["groups"].get("idle (waiting on sockets)", 0.0)
    rows = [
        [name, t / calls * 1e6, t / busy] for name, t in sorted(acc["groups"].items(), key=lambda kv: -kv[1]) if t > 0
    ]
    interesting = ("invoice_mcp", "mcp/", "pydantic", "httpx", "logging", "json")
    inc = [
        [k, v / calls * 1e6, v / busy]
        for k, v in sorted(acc["inclusive"].items(), key=lambda kv: -kv[1])
        if any(s in k for s in interesting) and v / busy > 0.03 and v < total * 0.999
    ][:16]
    return "\n".join(
        [
            f"Self time by package, main thread, {calls} in-process get_invoice calls "
            f"(busy = not waiting on sockets; the sandbox runs in another thread):",
            "",
            table(["package", "µs per call", "÷ busy"], rows),
            "",
            "Top frames by inclusive time (share of busy time; nested frames overlap):",
            "",
            table(["frame", "µs per call", "÷ busy"], inc),
        ]
    )


# -- the benchmark --------------------------------------------------------------------------------------


async def run() -> str:
    out: list[str] = []
    with sandbox(invoices=300, rate_limit=None) as sb:
        ids = [inv["id"] for inv in sb.invoices(include_archived=False)[:50]]
        env = server_env(sb, rate_limit=1000)
        with stderr_sink("overhead-ours") as err_ours, stderr_sink("overhead-min") as err_min:
            async with (
                Client(stdio(our_params(env), err_ours)) as ours,
                Client(stdio(minimal_params(), err_min)) as minimal,
                httpx.AsyncClient(base_url=sb.base_url) as http,
            ):
                token = await mint(http, sb.config.client_id, sb.config.client_secret)
                headers = {"Authorization": f"Bearer {token}"}
                i = 0

                async def direct() -> None:
                    r = await http.get(f"/invoices/{ids[i % len(ids)]}", headers=headers)
                    r.raise_for_status()

                async def noop() -> None:
                    _checked(await minimal.call_tool("noop", {}))

                async def tool() -> None:
                    _checked(await ours.call_tool("get_invoice", {"invoice": ids[i % len(ids)]}))

                samples: dict[str, list[float]] = {"direct": [], "noop": [], "ours": []}
                fns = {"direct": direct, "noop": noop, "ours": tool}
                for i in range(WARMUP):
                    for fn in fns.values():
                        await fn()
                for i in range(ITERATIONS):
                    order = list(fns) if i % 2 == 0 else list(reversed(fns))  # no fixed position bias
                    for name in order:
                        samples[name].append(await timed(fns[name]))

        d, n, o = samples["direct"], samples["noop"], samples["ours"]
        floor_med, floor_p95 = median(d) + median(n), p95(d) + p95(n)
        ratio = median(o) / floor_med
        out += [
            f"### get_invoice over stdio ({ITERATIONS} calls after {WARMUP} warm-up, interleaved)",
            "",
            table(
                ["path", "median ms", "p95 ms", "median ÷ floor", "p95 ÷ floor p95"],
                [
                    ["direct httpx GET /invoices/{id} (bearer)", median(d) * 1e3, p95(d) * 1e3, median(d) / floor_med, ""],
                    ["empty tool call, minimal MCPServer, stdio", median(n) * 1e3, p95(n) * 1e3, median(n) / floor_med, ""],
                    ["floor = direct + empty call", floor_med * 1e3, floor_p95 * 1e3, 1.0, 1.0],
                    [
                        "get_invoice, our server, stdio",
                        median(o) * 1e3,
                        p95(o) * 1e3,
                        ratio,
                        p95(o) / floor_p95,
                    ],
                ],
            ),
            "",
            table(
                ["target", "measured", "result"],
                [["get_invoice median within 1.2× floor", f"{ratio:.2f}×", verdict(ratio <= TARGET)]],
            ),
        ]

        # -- in-process: the same call without stdio, and a profile of it ---------------------------
        spec = importlib.util.spec_from_file_location("_minimal_server", str(__import__("_common").BENCH / "_minimal_server.py"))
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        logging.disable(logging.NOTSET)
        async with (
            Client(build_server(settings_for(sb, rate_limit=1000))) as mem,
            Client(mod.server) as mem_min,
            httpx.AsyncClient(base_url=sb.base_url) as http,
        ):
            token = await mint(http, sb.config.client_id, sb.config.client_secret)
            headers = {"Authorization": f"Bearer {token}"}
            k = 0

            async def direct2() -> None:
                (await http.get(f"/invoices/{ids[k % len(ids)]}", headers=headers)).raise_for_status()

            async def noop2() -> None:
                _checked(await mem_min.call_tool("noop", {}))

            async def tool2() -> None:
                _checked(await mem.call_tool("get_invoice", {"invoice": ids[k % len(ids)]}))

            fns2 = {"direct": direct2, "noop": noop2, "ours": tool2}
            mem_samples: dict[str, list[float]] = {name: [] for name in fns2}
            for k in range(WARMUP):
                for fn in fns2.values():
                    await fn()
            for k in range(ITERATIONS):
                for name, fn in fns2.items():
                    mem_samples[name].append(await timed(fn))
            md, mn, mo = (median(mem_samples[x]) for x in ("direct", "noop", "ours"))
            out += [
                "",
                "### Same call in-process (in-memory Client, no stdio)",
                "",
                table(
                    ["path", "median µs", "÷ (direct + empty call)"],
                    [
                        ["direct httpx GET", md * 1e6, md / (md + mn)],
                        ["empty tool call, minimal MCPServer, in-memory", mn * 1e6, mn / (md + mn)],
                        ["get_invoice, our server, in-memory", mo * 1e6, mo / (md + mn)],
                    ],
                ),
                "",
                f"In-process, our get_invoice costs {(mo - md - mn) * 1e6:.0f} µs more than the floor per call "
                f"(over stdio: {(median(o) - floor_med) * 1e6:.0f} µs).",
                "",
            ]
            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
            for k in range(PROFILE_CALLS):
                await tool2()
            profiler.stop()
            out.append(profile_summary(profiler, PROFILE_CALLS))
    return "\n".join(out)


def main() -> None:
    sys.setrecursionlimit(10_000)
    print("## Call overhead (bench/overhead.py)\n")
    print(anyio.run(run))


if __name__ == "__main__":
    main()
