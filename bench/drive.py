"""Drive the server by hand, as a model would, through a real MCP client session, and see exactly
what one kind of host shows: `text` (the text blocks only, most hosts) or `structured`
(JSON.stringify(structuredContent) only, as Claude Code). Every call is appended to a log with the
characters and o200k tokens shown, so a question's cost in each view can be added up afterwards.

    .venv/bin/python bench/drive.py serve &     # sandbox (300 invoices, today 2026-11-25) + server, HTTP
    .venv/bin/python bench/drive.py call text Q1 summarize_invoices '{"customer": "Acme"}'
    .venv/bin/python bench/drive.py tools       # what tools/list costs, once per session
    .venv/bin/python bench/drive.py truth       # the sandbox data now (for checking, never for answering)
    .venv/bin/python bench/drive.py report      # calls and characters per question and view

`serve` keeps one sandbox and one server (state store in the work folder) for the whole run, so
writes, the duplicate guard and the payment attribution index carry from call to call, as in a
session. The work folder is $DRIVE_DIR (default /tmp/invoice-mcp-drive).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from _common import PY, ROOT, TODAY
from counting import compact, seen, tok, tools_list_tokens
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from invoice_mcp.sandbox import Sandbox, SandboxConfig

DIR = Path(os.environ.get("DRIVE_DIR", "/tmp/invoice-mcp-drive"))
LOG = DIR / "log.jsonl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dump(sb: Sandbox) -> None:
    truth = {
        "today": TODAY.isoformat(),
        "invoices": sb.invoices(),
        "customers": sb.customers(),
        "payments": sb.payments(),
        "payments_by_invoice": sb.payments_by_invoice(),
    }
    (DIR / "truth.json").write_text(json.dumps(truth, default=str))


def serve() -> int:
    DIR.mkdir(parents=True, exist_ok=True)
    sb = Sandbox(SandboxConfig(invoices=300, customers=12, today=TODAY))
    sb.start()
    _dump(sb)
    port = _free_port()
    env = {
        **os.environ,
        "AP_CLIENT_ID": sb.config.client_id,
        "AP_CLIENT_SECRET": sb.config.client_secret,
        "AP_BASE_URL": sb.base_url,
        "AP_RATE_LIMIT": "1000",
        "AP_TIMEOUT_S": "30",
    }
    state = f"sqlite:///{DIR / 'state.db'}"
    cmd = [PY, "-m", "invoice_mcp", "--transport", "http", "--port", str(port), "--state", state]
    with (DIR / "server.log").open("w") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stderr=err, stdout=err)
    url = f"http://127.0.0.1:{port}/mcp"
    for _ in range(200):
        try:
            httpx.get(url, timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    (DIR / "server.json").write_text(json.dumps({"url": url, "pid": proc.pid, "serve_pid": os.getpid()}))
    print(url, flush=True)
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, lambda *_: _dump(sb))
    while not stop and proc.poll() is None:
        time.sleep(0.2)
    proc.terminate()
    proc.wait(timeout=10)
    sb.stop()
    return 0


def _url() -> str:
    return str(json.loads((DIR / "server.json").read_text())["url"])


async def _call(view: str, question: str, tool: str, args: dict[str, Any]) -> None:
    async with Client(streamable_http_client(_url())) as c:
        res = await c.call_tool(tool, args)
    shown = seen(res, "text" if view == "text" else "structured")
    print(shown)
    entry = {
        "q": question,
        "view": view,
        "tool": tool,
        "args": args,
        "chars": len(shown),
        "tokens": tok(shown),
        "error": bool(res.is_error),
    }
    with LOG.open("a") as f:
        f.write(json.dumps(entry) + "\n")
    print(f"\n[{question} {view}: {len(shown):,} chars, {entry['tokens']:,} tokens]", file=sys.stderr)


async def _tools(view: str) -> None:
    async with Client(streamable_http_client(_url())) as c:
        tools = (await c.list_tools()).tools
    keys = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
    wire = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    text = compact({"tools": [{k: t[k] for k in keys if k in t} for t in wire]})
    print(json.dumps({"tools": len(tools), "chars": len(text), "tokens": tools_list_tokens(tools)}))


def report() -> None:
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in LOG.read_text().splitlines():
        e = json.loads(line)
        rows.setdefault((e["q"], e["view"]), []).append(e)
    print("| question | view | calls | characters | tokens | tools |")
    print("|---|---|---|---|---|---|")
    totals: dict[str, list[int]] = {}
    for (q, view), es in rows.items():
        chars, toks = sum(e["chars"] for e in es), sum(e["tokens"] for e in es)
        t = totals.setdefault(view, [0, 0, 0])
        t[0] += len(es)
        t[1] += chars
        t[2] += toks
        print(f"| {q} | {view} | {len(es)} | {chars:,} | {toks:,} | {' → '.join(e['tool'] for e in es)} |")
    for view, (calls, chars, toks) in totals.items():
        print(f"| **all** | {view} | {calls} | {chars:,} | {toks:,} | |")


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "serve":
        return serve()
    if cmd == "call" and len(sys.argv) == 6:
        anyio.run(_call, sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]))
        return 0
    if cmd == "tools":
        anyio.run(_tools, sys.argv[2] if len(sys.argv) > 2 else "text")
        return 0
    if cmd == "truth":
        pid = json.loads((DIR / "server.json").read_text()).get("serve_pid")
        if pid:
            os.kill(int(pid), signal.SIGUSR1)
        print(DIR / "truth.json")
        return 0
    if cmd == "report":
        report()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
