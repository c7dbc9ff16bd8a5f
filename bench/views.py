"""MCP Apps views: HTML size of each view, and its first render in headless Chromium against a
blank page that carries the same bridge and helpers (same handshake, same data, nothing drawn).

First render = from the moment the test host inserts the iframe until the view, having received
the tool result, reports its new size (its ResizeObserver fires after layout). The tool result is
fetched once beforehand, so server time is not in the figure. Rounds alternate view and blank.

Run: .venv/bin/python bench/views.py        (needs chromium: apt-get install chromium)
"""

from __future__ import annotations

import os
import statistics
import sys

from _common import sandbox, settings_for

from invoice_mcp.faces.apphost import AppHost
from invoice_mcp.faces.chromium import chromium
from invoice_mcp.server.apps import SHARED, VIEWS, _asset, assemble, view_html

ROUNDS = int(os.environ.get("BENCH_VIEW_ROUNDS", "15"))
LIMIT_BYTES = 150_000
TARGET_RATIO = 2.0

BLANK = """
"use strict";
Bridge.on("ui/notifications/tool-result", function (r) {
  var box = UI.h("div", { text: r && r.structuredContent ? "ok" : "?" });
  box.style.height = "200px";
  UI.show([box]);
});
Bridge.start("blank").catch(Bridge.showError);
"""


def main() -> int:
    blank = assemble("blank", [*(_asset(n) for n in SHARED), BLANK])
    rows = []
    ok = True
    with sandbox() as sb:
        host = AppHost(settings_for(sb))
        with host.running() as h, chromium() as browser:
            page = browser.page(700, 900)
            presets = {}
            for v in VIEWS:
                name = {"list_invoices": "list", "summarize_invoices": "summary", "get_invoice": "invoice"}.get(
                    v.tool, "create"
                )
                tool, args = h.sync(h.preset, name)
                result = h.sync(h.call, tool, args)
                presets[v.tool] = {"tool": tool, "arguments": args, "result": result}
            for v in VIEWS:
                h.specs["view"] = presets[v.tool]
                h.specs["blank"] = {**presets[v.tool], "html": blank}
                times: dict[str, list[float]] = {"view": [], "blank": []}
                for _ in range(ROUNDS + 1):  # the first round warms the page and is dropped
                    for kind in ("view", "blank"):
                        page.goto(f"{h.url}?spec={kind}")
                        page.wait("window.timing.rendered")
                        times[kind].append(page.eval("window.timing.rendered - window.timing.inserted"))
                view_ms = statistics.median(times["view"][1:])
                blank_ms = statistics.median(times["blank"][1:])
                size = len(view_html(v.tool).encode())
                ratio = view_ms / blank_ms
                ok = ok and size <= LIMIT_BYTES and ratio <= TARGET_RATIO
                rows.append((v.uri, size, view_ms, blank_ms, ratio))
    blank_size = len(blank.encode())
    print(f"## MCP Apps views (headless Chromium, median of {ROUNDS} rounds)\n")
    print("| view | HTML bytes | first render ms | blank page ms | ratio |")
    print("|---|---|---|---|---|")
    for uri, size, view_ms, blank_ms, ratio in rows:
        print(f"| `{uri}` | {size:,} | {view_ms:.1f} | {blank_ms:.1f} | {ratio:.2f}× |")
    print(
        f"\nBlank page with the same bridge: {blank_size:,} bytes. Targets: ≤ {LIMIT_BYTES:,} bytes, "
        f"≤ {TARGET_RATIO:.0f}× the blank page. {'All met.' if ok else 'NOT MET.'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
