"""``invoice-mcp demo``: a scripted assistant session against the embedded sandbox.

It starts the sandbox in this process, spawns the real stdio server
(``python -m invoice_mcp``) pointed at it, and drives it with the SDK client the
way an assistant would: each step prints the user's question, the tool call and
the compact text the tool wrote for the model. Create and archive confirmations
(MCP elicitation) are accepted automatically and the question shown is printed.
Payment and PDF links are bearer secrets, so they are printed truncated.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import date, timedelta
from typing import Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.client import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult

from invoice_mcp.sandbox import Sandbox, SandboxConfig

MAX_LINES = 8
LINK_CHARS = 30
_URL = re.compile(r"https?://\S+")


class DemoError(Exception):
    """A step failed; the demo stops."""


def shorten_links(text: str) -> str:
    """Links are bearer secrets: show only their first characters."""
    return _URL.sub(lambda m: m.group(0)[:LINK_CHARS] + "…", text)


def trimmed(text: str, max_lines: int = MAX_LINES) -> list[str]:
    lines = shorten_links(text).splitlines() or [""]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"… ({len(lines) - max_lines + 1} more lines)"]
    return lines


def _text(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def _shown_args(args: dict[str, Any]) -> str:
    shown = {k: (v[:16] + "…" if k == "cursor" and isinstance(v, str) and len(v) > 16 else v) for k, v in args.items()}
    return json.dumps(shown, ensure_ascii=False)


def server_params(sandbox: Sandbox) -> StdioServerParameters:
    """The real stdio server, pointed at the sandbox. Every setting is explicit so a `.env`
    in the working directory cannot change the demo (the environment wins over `.env`)."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "invoice_mcp"],
        env={
            "AP_CLIENT_ID": sandbox.config.client_id,
            "AP_CLIENT_SECRET": sandbox.config.client_secret,
            "AP_ENVIRONMENT": "demo",
            "AP_BASE_URL": sandbox.base_url,
            "AP_TIMEOUT_S": "10",
            "AP_RATE_LIMIT": "5",
            "INVOICE_MCP_READ_ONLY": "0",
            "INVOICE_MCP_CONFIRM": "auto",
            "INVOICE_MCP_REDIS_URL": "",
            "INVOICE_MCP_HTTP_TOKEN": "",
        },
    )


class Transcript:
    def __init__(self, client: Client, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.steps = 0
        self.calls = 0

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    def user(self, question: str) -> None:
        self.steps += 1
        self.say()
        self.say(f"[{self.steps}] User: {question}")

    async def call(self, tool: str, args: dict[str, Any], *, progress: bool = False) -> CallToolResult:
        self.say(f"  → {tool} {_shown_args(args)}")
        notes: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            notes.append(message or str(progress))

        self.calls += 1
        result = await self.client.call_tool(tool, args, progress_callback=on_progress if progress else None)
        if notes:
            self.say(f"  (progress: {len(notes)} updates, last: {shorten_links(notes[-1])})")
        for i, line in enumerate(trimmed(_text(result))):
            self.say(f"  {'←' if i == 0 else ' '} {line}")
        if result.is_error:
            raise DemoError(f"{tool} failed: {shorten_links(_text(result))[:300]}")
        return result


def _data(result: CallToolResult) -> dict[str, Any]:
    data = result.structured_content
    if not isinstance(data, dict):
        raise DemoError("a tool returned no structured content")
    return data


async def _script(t: Transcript) -> None:
    t.user("show me my most recent invoices")
    first = _data(await t.call("list_invoices", {"limit": 5}))
    cursor = first.get("next_cursor")
    if not cursor:
        raise DemoError("list_invoices returned no next_cursor")

    t.user("next page, please")
    await t.call("list_invoices", {"limit": 5, "cursor": cursor})

    t.user("which invoices are overdue, and how much is that?")
    overdue = _data(await t.call("summarize_invoices", {"status": "overdue"}, progress=True))
    top = overdue.get("by_customer") or []
    name = next((c.get("customer") for c in top if c.get("customer")), None)
    if not name:
        raise DemoError("no customer with overdue invoices to ask about")

    t.user(f"what does {name} owe us?")
    await t.call("summarize_invoices", {"customer": name}, progress=True)

    part = name.split()[0]
    t.user(f"what's the customer id of {part}…?")
    found = _data(await t.call("find_customers", {"name": part}))
    customer = next((c for c in found["customers"] if c.get("name") == name), found["customers"][0])

    due = (date.fromisoformat(first["as_of"]) + timedelta(days=30)).isoformat()  # the API's today
    create = {
        "customer_id": customer["id"],
        "line_items": [{"description": "Consulting, November", "amount": 150.0, "quantity": 10}],
        "due_date": due,
    }
    t.user(f"bill {customer['name']} for 10 hours of consulting at $150, due in 30 days; show me first")
    await t.call("create_invoice", {**create, "dry_run": True})

    t.user("looks right, create it")
    created = _data(await t.call("create_invoice", create))
    invoice = created.get("invoice_id")
    if created.get("outcome") != "created" or not invoice:
        raise DemoError("create_invoice did not create the invoice")

    t.user("hmm, that was a mistake: archive it")
    await t.call("archive_invoice", {"invoice": invoice})

    t.user("no wait, restore it")
    await t.call("restore_invoice", {"invoice": invoice})

    t.user("send me the payment link for it")
    await t.call("get_invoice_payment_link", {"invoice": invoice})

    t.user("and the PDF link")
    await t.call("get_invoice_pdf_link", {"invoice": invoice})


async def run_demo(out: TextIO = sys.stdout, *, sandbox_config: SandboxConfig | None = None) -> int:
    started = time.monotonic()
    sandbox = Sandbox(sandbox_config or SandboxConfig())
    sandbox.start()
    ok = False
    try:
        printer: list[Transcript] = []

        async def on_elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
            t = printer[0]
            message = getattr(params, "message", "")
            t.say("  ? the server asks the user to confirm:")
            for line in trimmed(message):
                t.say(f"  |   {line}")
            t.say("  ✓ user accepts")
            return ElicitResult(action="accept", content={"ok": True})

        print(
            "invoice-mcp demo: an assistant session with the real stdio server and the embedded sandbox API "
            f"({sandbox.base_url}, demo data, no credentials needed)",
            file=out,
            flush=True,
        )
        async with Client(server_params(sandbox), elicitation_callback=on_elicit) as client:
            t = Transcript(client, out)
            printer.append(t)
            tools = (await client.list_tools()).tools
            t.say(f"Server: python -m invoice_mcp over stdio, protocol {client.protocol_version}, {len(tools)} tools")
            try:
                await _script(t)
                ok = True
            except DemoError as exc:
                t.say()
                t.say(f"DEMO FAILED: {exc}")
        requests = sandbox.requests()
        print(
            f"\n— {t.calls} tool calls in {time.monotonic() - started:.1f} s; the server made {len(requests)} "
            f"upstream API requests, {sandbox.token_requests} of them for an access token.",
            file=out,
            flush=True,
        )
    except Exception as exc:  # the server could not start, the client broke, …
        print(f"DEMO FAILED: {type(exc).__name__}: {exc}", file=out, flush=True)
        ok = False
    finally:
        sandbox.stop()
    return 0 if ok else 1


def main(out: TextIO = sys.stdout) -> int:
    return anyio.run(run_demo, out)
