"""Call overhead: get_invoice through a stdio MCP session against the floor.

Floor = the same GETs made directly with httpx (bearer token: the invoice, then its payments) + an empty tool
call on a minimal MCPServer over stdio (sum of medians). Then pyinstrument on the in-process path shows
where our time goes.
Run: .venv/bin/python bench/overhead.py
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
import types
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from _common import (
    median,
    minimal_params,
    our_params,
    p95,
    sandbox_process,
    server_env,
    settings_for,
    stderr_sink,
    stdio,
    table,
    verdict,
)
from mcp import Client
from pyinstrument import Profiler
from pyinstrument.frame import Frame
from tokens import nullable_as_type_list

import invoice_mcp.server.render as common_mod
import invoice_mcp.text as text_mod
from invoice_mcp.api.models import Invoice
from invoice_mcp.server import build_server

WARMUP = 30
ITERATIONS = 500
ROUNDS = 5
PROFILE_CALLS = 1000
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
    ("/jsonschema/", "jsonschema+referencing (client checks structuredContent)"),
    ("/referencing/", "jsonschema+referencing (client checks structuredContent)"),
    ("<frozen importlib", "importlib (httpcore's failing `import sniffio`, per request)"),
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


def group_of(frame: Frame, parent: str) -> str:
    if frame.is_synthetic:  # "[self]" and friends: time of the enclosing function
        return parent
    path = frame.file_path or ""
    if frame.function.endswith(("poll", "select")) and path == "<built-in>":
        return "idle (waiting on sockets)"
    if path == "<built-in>":  # a builtin belongs to whoever called it
        return parent
    for needle, name in GROUPS:
        if needle in path:
            return name
    return "other (stdlib/builtins)"


def walk(frame: Frame, parent: str, seen: frozenset[str], acc: dict[str, Any], parent_key: str = "") -> None:
    group = group_of(frame, parent)
    self_t = max(0.0, frame.time - sum(c.time for c in frame.children))
    acc["groups"][group] += self_t
    key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
    if frame.is_synthetic:
        acc["self"][parent_key] += self_t
    elif frame.file_path == "<built-in>":
        acc["self"][f"{frame.function} ← {parent_key}"] += self_t
    else:
        acc["self"][key] += self_t
    if not frame.is_synthetic and key not in seen:  # inclusive time, counted once per stack
        acc["inclusive"][key] += frame.time
    for c in frame.children:
        walk(c, group, seen | {key}, acc, key)


def profile_summary(profiler: Profiler, calls: int) -> str:
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    assert root is not None
    acc: dict[str, Any] = {"groups": defaultdict(float), "inclusive": defaultdict(float), "self": defaultdict(float)}
    walk(root, "other (stdlib/builtins)", frozenset(), acc)
    total = root.time
    busy = total - acc["groups"].get("idle (waiting on sockets)", 0.0)
    rows = [
        [name, t / calls * 1e6, t / busy] for name, t in sorted(acc["groups"].items(), key=lambda kv: -kv[1]) if t > 0
    ]
    selfs = [[k, v / calls * 1e6, v / busy] for k, v in sorted(acc["self"].items(), key=lambda kv: -kv[1])][:12]
    interesting = ("invoice_mcp", "pydantic", "httpx", "logging", "json")
    inc = [
        [k, v / calls * 1e6, v / busy]
        for k, v in sorted(acc["inclusive"].items(), key=lambda kv: -kv[1])
        if any(s in k for s in interesting) and v / busy > 0.03 and v < total * 0.999
    ][:10]
    return "\n".join(
        [
            f"pyinstrument, main thread, {calls} in-process get_invoice calls (the sandbox is another process; "
            "the profiler inflates absolute times, read the shares). Self time by package, builtins charged to "
            "their caller's package; busy = not waiting in epoll:",
            "",
            table(["package", "µs per call", "÷ busy"], rows),
            "",
            "Top functions by self time:",
            "",
            table(["function", "µs per call", "÷ busy"], selfs),
            "",
            "Top frames by inclusive time (share of busy time; nested frames overlap):",
            "",
            table(["frame", "µs per call", "÷ busy"], inc),
        ]
    )


# -- what-if experiments (measured in-process, nothing in the package is changed) --------------------------

SNIFFIO_STUB = types.ModuleType("sniffio")
SNIFFIO_STUB.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
AB_CALLS = 300


def _set_variant(httpx_quiet: bool, sniffio: bool) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING if httpx_quiet else logging.NOTSET)
    if sniffio:
        sys.modules["sniffio"] = SNIFFIO_STUB
    elif sys.modules.get("sniffio") is SNIFFIO_STUB:
        del sys.modules["sniffio"]


def _fast_clean(value: str | None, max_len: int = 200) -> str:
    """text.clean with a fast path: a printable string has no C*/Z* characters but ASCII space."""
    if value and value.isprintable():
        out = text_mod._WS.sub(" ", value).strip()
        return out if len(out) <= max_len else out[: max_len - 1].rstrip() + "…"
    return ORIGINAL_CLEAN(value, max_len)


ORIGINAL_CLEAN = text_mod.clean


def _render_us(invs: list[Invoice], clean: Callable[..., str]) -> tuple[float, list[str]]:
    text_mod.clean = common_mod.clean = clean  # type: ignore[assignment]
    try:
        t = time.perf_counter()
        texts = [common_mod.detail_text(common_mod.detail(inv, "Harborview Accounting")) for inv in invs * 20]
        return (time.perf_counter() - t) / len(texts) * 1e6, texts
    finally:
        text_mod.clean = common_mod.clean = ORIGINAL_CLEAN  # type: ignore[assignment]


def _validate_us(schema: dict[str, Any], instance: Any) -> float:
    from jsonschema import exceptions as jsonschema_exceptions
    from jsonschema.validators import validator_for
    from referencing import Registry

    validator = validator_for(schema)(schema, registry=Registry())
    t = time.perf_counter()
    for _ in range(500):
        assert jsonschema_exceptions.best_match(validator.iter_errors(instance)) is None
    return (time.perf_counter() - t) / 500 * 1e6


async def experiments(mem: Client, ids: list[str]) -> str:
    variants = {
        "as shipped": (False, False),
        "httpx logger at WARNING (no per-request INFO line)": (True, False),
        "sniffio importable (stub module)": (False, True),
        "both": (True, True),
    }
    samples: dict[str, list[float]] = {v: [] for v in variants}
    names = list(variants)
    for k in range(AB_CALLS * len(names)):
        name = names[k % len(names)]
        _set_variant(*variants[name])
        t = time.perf_counter()
        _checked(await mem.call_tool("get_invoice", {"invoice": ids[k % len(ids)]}))
        samples[name].append(time.perf_counter() - t)
    _set_variant(False, False)
    base = median(samples["as shipped"])
    rows: list[list[object]] = [[n, median(xs) * 1e6, median(xs) / base] for n, xs in samples.items()]

    res = _checked(await mem.call_tool("get_invoice", {"invoice": ids[0]}))
    schema = {t.name: t for t in (await mem.list_tools()).tools}["get_invoice"].output_schema
    assert schema is not None
    cur = _validate_us(schema, res.structured_content)
    alt = _validate_us(nullable_as_type_list(schema), res.structured_content)

    invs = [Invoice.model_validate(inv) for inv in (await _raw_invoices(mem, ids))]
    r_cur, t_cur = _render_us(invs, ORIGINAL_CLEAN)
    r_alt, t_alt = _render_us(invs, _fast_clean)
    assert t_cur == t_alt, "fast clean changed the output"
    rows += [
        ["client-side outputSchema check of one get_invoice result (jsonschema, as shipped)", cur, cur / base / 1e6],
        ["same check, nullable fields as type: [X, null] (equivalent schema)", alt, alt / base / 1e6],
        ["render detail()+detail_text() (text.clean as shipped)", r_cur, r_cur / base / 1e6],
        ["same render, clean() with an isprintable() fast path (identical text)", r_alt, r_alt / base / 1e6],
    ]
    return "\n".join(
        [
            f"What-if, in-process get_invoice ({AB_CALLS} calls per variant, interleaved; last four rows are "
            "micro-benchmarks of one step, ratio against the as-shipped call):",
            "",
            table(["variant", "median µs", "÷ as shipped call"], rows),
            "",
        ]
    )


async def _raw_invoices(mem: Client, ids: list[str]) -> list[dict[str, Any]]:
    del mem
    return [inv for inv in RAW if inv["id"] in set(ids)]


RAW: list[dict[str, Any]] = []


# -- the benchmark --------------------------------------------------------------------------------------


async def run() -> str:
    out: list[str] = []
    with sandbox_process(invoices=300, rate_limit=None) as sb:
        async with httpx.AsyncClient(base_url=sb.base_url) as http:
            token = await mint(http, sb.config.client_id, sb.config.client_secret)
            page = await http.get("/invoices", params={"limit": "50"}, headers={"Authorization": f"Bearer {token}"})
            RAW[:] = page.raise_for_status().json()["data"]
        ids = [inv["id"] for inv in RAW]
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

                paid_seen: set[str] = set()

                async def direct() -> None:
                    # get_invoice's GETs: the invoice, then its payments (balance due) the first time an id is
                    # seen, as our server caches them for 60 s (the run is shorter)
                    inv_id = ids[i % len(ids)]
                    r = await http.get(f"/invoices/{inv_id}", headers=headers)
                    r.raise_for_status()
                    if inv_id not in paid_seen:
                        paid_seen.add(inv_id)
                        q = {"limit": "100", "invoice_id": inv_id}
                        (await http.get("/payments", params=q, headers=headers)).raise_for_status()

                async def noop() -> None:
                    _checked(await minimal.call_tool("noop", {}))

                async def tool() -> None:
                    _checked(await ours.call_tool("get_invoice", {"invoice": ids[i % len(ids)]}))

                rounds: list[dict[str, list[float]]] = []
                fns = {"direct": direct, "noop": noop, "ours": tool}
                for _ in range(WARMUP):
                    for fn in fns.values():
                        await fn()
                for r in range(ROUNDS):
                    rounds.append({name: [] for name in fns})
                    for j in range(ITERATIONS // ROUNDS):
                        i = r * ITERATIONS + j
                        order = list(fns) if j % 2 == 0 else list(reversed(fns))  # no fixed position bias
                        for name in order:
                            rounds[-1][name].append(await timed(fns[name]))

        d, n, o = ([x for rd in rounds for x in rd[k]] for k in ("direct", "noop", "ours"))
        floor_med, floor_p95 = median(d) + median(n), p95(d) + p95(n)
        round_ratios = sorted(median(rd["ours"]) / (median(rd["direct"]) + median(rd["noop"])) for rd in rounds)
        ratio = median(round_ratios)
        out += [
            f"### get_invoice over stdio ({ITERATIONS} calls of each path after {WARMUP} warm-up, interleaved, "
            f"in {ROUNDS} rounds)",
            "",
            table(
                ["path", "median ms", "p95 ms", "median ÷ floor", "p95 ÷ floor p95"],
                [
                    [
                        "direct httpx GET /invoices/{id} (bearer; + /payments?invoice_id once per id)",
                        median(d) * 1e3,
                        p95(d) * 1e3,
                        median(d) / floor_med,
                        "",
                    ],
                    [
                        "empty tool call, minimal MCPServer, stdio",
                        median(n) * 1e3,
                        p95(n) * 1e3,
                        median(n) / floor_med,
                        "",
                    ],
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
                [
                    [
                        "get_invoice median within 1.2× floor (median of per-round ratios)",
                        f"{ratio:.2f}× (rounds: {', '.join(f'{x:.2f}' for x in round_ratios)})",
                        verdict(ratio <= TARGET),
                    ]
                ],
            ),
        ]

        # -- in-process: the same call without stdio, and a profile of it ---------------------------
        spec = importlib.util.spec_from_file_location(
            "_minimal_server", str(__import__("_common").BENCH / "_minimal_server.py")
        )
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
            for _ in range(WARMUP):
                for fn in fns2.values():
                    await fn()
            for k in range(ITERATIONS):  # noqa: B007 - k is read by the closures
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
            out.append(await experiments(mem, ids))
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
            for k in range(PROFILE_CALLS):  # noqa: B007 - k is read by tool2
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
