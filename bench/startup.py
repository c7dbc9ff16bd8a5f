"""Start-up: process spawn → `tools/list` answered over stdio, our server against a minimal MCPServer.

If over target, `python -X importtime` shows which imports our server adds.
Run: .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import defaultdict
from typing import Any

import anyio
from _common import (
    BENCH,
    PY,
    ROOT,
    launcher,
    median,
    minimal_params,
    our_params,
    sandbox,
    server_env,
    stderr_sink,
    stdio,
    table,
    verdict,
)
from mcp import Client
from mcp.client.stdio import StdioServerParameters

RUNS = 10
IMPORT_RUNS = 3
PHASE_RUNS = 5
TARGET = 1.1


async def spawn_to_tools(params: StdioServerParameters, name: str) -> tuple[float, int]:
    with stderr_sink(f"startup-{name}") as err:
        t = time.perf_counter()
        async with Client(stdio(params, err)) as client:
            tools = (await client.list_tools()).tools
            elapsed = time.perf_counter() - t
    return elapsed, len(tools)


def import_times(params: StdioServerParameters) -> dict[str, tuple[float, float]]:
    """Median self and cumulative µs per module over IMPORT_RUNS runs of the server with stdin at EOF."""
    runs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    env = {**os.environ, **(params.env or {})}
    for _ in range(IMPORT_RUNS):
        proc = subprocess.run(
            [PY, "-X", "importtime", *params.args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            cwd=str(ROOT),
            timeout=60,
            check=False,
        )
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cum_us, mod = line.removeprefix("import time:").split("|")
            runs[mod.strip()].append((int(self_us), int(cum_us)))
    return {m: (median([s for s, _ in v]), median([c for _, c in v])) for m, v in runs.items()}


def phases(env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Median seconds per start-up phase, per server kind, over PHASE_RUNS fresh interpreters each
    (alternating kinds; see _startup_phases.py)."""
    runs: dict[str, dict[str, list[float]]] = {"ours": defaultdict(list), "minimal": defaultdict(list)}
    for i in range(PHASE_RUNS * 2):
        kind = ("ours", "minimal")[i % 2]
        proc = subprocess.run(
            [PY, str(BENCH / "_startup_phases.py"), kind],
            capture_output=True,
            text=True,
            env={**os.environ, **(env if kind == "ours" else {})},
            cwd=str(ROOT),
            timeout=60,
            check=True,
        )
        for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            runs[kind][k].append(v)
    return {kind: {k: median(v) for k, v in r.items()} for kind, r in runs.items()}


async def run() -> str:
    with sandbox(invoices=10) as sb:
        env = server_env(sb)
        ours_p, min_p = our_params(env), minimal_params()
        ours: list[float] = []
        minimal: list[float] = []
        n_ours = n_min = 0
        await spawn_to_tools(ours_p, "warm")  # page cache warm for both interpreters
        await spawn_to_tools(min_p, "warm-min")
        for i in range(RUNS):
            pair = [("ours", ours_p), ("min", min_p)]
            for name, p in pair if i % 2 == 0 else reversed(pair):
                t, n = await spawn_to_tools(p, name)
                if name == "ours":
                    ours.append(t)
                    n_ours = n
                else:
                    minimal.append(t)
                    n_min = n
        ratio = median(ours) / median(minimal)
        out = [
            f"### Spawn → tools/list answered ({RUNS} runs each, alternating; server: `{launcher()[1]}`)",
            "",
            table(
                ["server", "tools", "median ms", "min ms", "max ms", "median ÷ minimal"],
                [
                    [
                        "minimal MCPServer, one tool",
                        n_min,
                        median(minimal) * 1e3,
                        min(minimal) * 1e3,
                        max(minimal) * 1e3,
                        1.0,
                    ],
                    ["invoice-mcp", n_ours, median(ours) * 1e3, min(ours) * 1e3, max(ours) * 1e3, ratio],
                ],
            ),
            "",
            table(
                ["target", "measured", "result"],
                [["start-up within 1.1× minimal MCPServer", f"{ratio:.2f}×", verdict(ratio <= TARGET)]],
            ),
        ]
        ph = phases(env)
        ph_ours, ph_min = ph["ours"], ph["minimal"]
        min_total = sum(ph_min.values())
        out += [
            "",
            f"In-process start-up phases (median of {PHASE_RUNS} fresh interpreters; in-memory client; ratio "
            "against the minimal server's total):",
            "",
            table(
                ["phase", "minimal ms", "ours ms", "ours − minimal ms", "(ours − minimal) ÷ minimal total"],
                [
                    [
                        k,
                        ph_min[k] * 1e3,
                        ph_ours[k] * 1e3,
                        (ph_ours[k] - ph_min[k]) * 1e3,
                        (ph_ours[k] - ph_min[k]) / min_total,
                    ]
                    for k in ph_min
                ]
                + [
                    [
                        "total",
                        min_total * 1e3,
                        sum(ph_ours.values()) * 1e3,
                        (sum(ph_ours.values()) - min_total) * 1e3,
                        sum(ph_ours.values()) / min_total - 1,
                    ]
                ],
            ),
        ]
        ours_imp = import_times(ours_p)
        min_imp = import_times(min_p)
        extra = {m: v for m, v in ours_imp.items() if m not in min_imp}
        extra_self = sum(s for s, _ in extra.values())
        total_ours = sum(s for s, _ in ours_imp.values())
        total_min = sum(s for s, _ in min_imp.values())
        by_pkg: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for m, (self_us, _) in extra.items():
            by_pkg[m.split(".")[0]][0] += self_us
            by_pkg[m.split(".")[0]][1] += 1
        top_extra = sorted(by_pkg.items(), key=lambda kv: -kv[1][0])[:10]
        ours_pkg = sorted(
            ((m, v) for m, v in ours_imp.items() if m.split(".")[0] == "invoice_mcp"),
            key=lambda kv: -kv[1][1],
        )[:10]
        rows: list[list[Any]] = [[pkg, int(n), s / 1e3, s / extra_self] for pkg, (s, n) in top_extra]
        out += [
            "",
            f"`python -X importtime` (median of {IMPORT_RUNS}, server run with stdin at EOF): all imports "
            f"{total_ours / 1e3:.0f} ms self vs {total_min / 1e3:.0f} ms for the minimal server "
            f"(ratio {total_ours / total_min:.2f}); {len(extra)} modules only our server imports, "
            f"{extra_self / 1e3:.0f} ms self.",
            "",
            "Modules only our server imports, by top-level package (self time):",
            "",
            table(["package", "modules", "self ms", "÷ extra self"], rows),
            "",
            "Our package's modules, by cumulative time:",
            "",
            table(["module", "self ms", "cumulative ms"], [[m, s / 1e3, c / 1e3] for m, (s, c) in ours_pkg]),
        ]
        if ratio <= TARGET:
            out.append("\n(start-up is within target; the import tables are for reference)")
    return "\n".join(out)


def main() -> None:
    print("## Start-up (bench/startup.py)\n")
    print(anyio.run(run))


if __name__ == "__main__":
    main()
