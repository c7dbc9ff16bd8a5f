"""Secrets never leak: not into logs (even at DEBUG), tool results, error messages or reprs.

A broad session (every tool, errors, injected faults, both link tools) runs twice: in-process with
every logger captured raw at DEBUG (no redacting handler in the way), and over stdio as
`python -m invoice_mcp --log-level DEBUG` with the server's stderr captured. Neither may contain
the client secret (plain or inside the Basic header), any access token the sandbox issued, or a
payment/PDF link (bearer URLs: the model may see them, the logs may not).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from invoice_mcp.api.auth import basic_auth
from invoice_mcp.api.client import APIClient
from invoice_mcp.api.ratelimit import LocalRateLimiter
from invoice_mcp.api.settings import Settings, SettingsError, load_settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

from .conftest import settings_for, text_of
from .procs import coverage_env
from .test_faults import VirtualTime

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def broad_session(sb: Sandbox, call: Call, *, waits: bool = True) -> list[str]:
    """Every tool, the error paths and a fault of each kind; returns the payment/PDF link URLs seen.
    `waits=False` skips the faults whose retries sleep for real (persistent 5xx, 429)."""
    visible = sb.invoices(include_archived=False)
    inv = next(i for i in visible if i["status"] == "open")
    other = next(i for i in visible if i["status"] == "open" and i["id"] != inv["id"])
    cust = sb.customers()[0]
    links: list[str] = []

    first = await call("list_invoices", {"limit": 5})
    await call("list_invoices", {"cursor": first.structured_content["next_cursor"]})
    await call("list_invoices", {"customer": cust["name"], "status": "open"})
    await call("get_invoice", {"invoice": inv["id"]})
    await call("get_invoice", {"invoice": inv["invoice_number"]})
    await call("summarize_invoices", {"customer_id": inv["customer_id"]})
    await call("find_customers", {"name": cust["name"][:4]})
    for tool in ("get_invoice_payment_link", "get_invoice_pdf_link"):
        for ref in (inv["id"], other["invoice_number"]):
            res = await call(tool, {"invoice": ref})
            assert not res.is_error, text_of(res)
            links.append(res.structured_content["url"])
    new = {"customer_id": cust["id"], "line_items": [{"description": "Audit", "amount": 99.5, "quantity": 2}]}
    await call("create_invoice", {**new, "dry_run": True})
    await call("create_invoice", new)
    await call("create_invoice", new)  # refused as a duplicate
    await call("archive_invoice", {"invoice": inv["id"]})
    await call("get_invoice_payment_link", {"invoice": inv["id"]})  # 422: archived
    await call("restore_invoice", {"invoice": inv["id"]})

    # errors: not found, invalid arguments, a tampered cursor, an unknown argument
    await call("get_invoice", {"invoice": "inv_doesnotexist"})
    await call("get_invoice", {"invoice": "../oauth/token"})
    await call("list_invoices", {"cursor": "x" + first.structured_content["next_cursor"][1:]})
    await call("list_invoices", {"limit": 0, "bogus": 1})

    # faults: 401 after a fresh token, expiry, 5xx burst, persistent 503, malformed, drop, 429, token 403
    f = sb.faults
    f.fail_next(1, 401, path="/invoices/")
    await call("get_invoice", {"invoice": inv["id"]})
    f.expire_tokens()
    await call("summarize_invoices", {"status": "overdue"})
    f.fail_next(2, 503, path="/customers")
    await call("find_customers", {"name": "a"})
    if waits:
        f.fail_next(50, 503, path="/invoices/")
        await call("get_invoice_pdf_link", {"invoice": inv["id"]})
        f.clear()
        f.fail_next(1, 429, retry_after="1", path="/invoices/")
        await call("get_invoice_pdf_link", {"invoice": other["id"]})
    f.malformed_next(1, path="/invoices/")
    await call("get_invoice_payment_link", {"invoice": inv["id"]})
    f.drop_next(1, path="/invoices/")
    await call("get_invoice", {"invoice": inv["id"]})
    f.fail_next(1, 503, method="POST", path="/invoices")
    await call("create_invoice", {**new, "allow_duplicate": True})  # ambiguous, not re-sent
    f.fail_next(10, 401, path="/invoices/")
    await call("get_invoice", {"invoice": inv["id"]})  # credentials error after one re-mint
    f.clear()
    f.expire_tokens()
    f.fail_next(1, 403, path="/oauth/token")
    await call("get_invoice", {"invoice": inv["id"]})
    await call("get_invoice_payment_link", {"invoice": other["id"]})
    return links


def forbidden_in_logs(sb: Sandbox, links: list[str]) -> dict[str, str]:
    secret = sb.config.client_secret
    header = basic_auth(sb.config.client_id, secret)
    out = {"client secret": secret, "basic credentials": header.split(" ", 1)[1]}
    out |= {f"token {t[:6]}…": t for t in sb.issued_tokens}
    for url in links:
        out[f"link {url[:30]}…"] = url
        out[f"link path {url[:30]}…"] = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
    return out


def forbidden_in_results(sb: Sandbox) -> dict[str, str]:
    secret = sb.config.client_secret
    out = {"client secret": secret, "basic credentials": basic_auth(sb.config.client_id, secret).split(" ", 1)[1]}
    return out | {f"token {t[:6]}…": t for t in sb.issued_tokens}


def assert_absent(haystack: str, needles: dict[str, str], where: str) -> None:
    found = [name for name, value in needles.items() if value and value in haystack]
    assert not found, f"{where} contains: {found}"


async def test_no_secrets_in_debug_logs_results_or_errors(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, record_property: Callable[[str, object], None]
) -> None:
    for name in ("", "httpx", "httpcore", "mcp", "invoice_mcp", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    outputs: list[str] = []
    vt = VirtualTime()

    def client(s: Settings) -> APIClient:  # back-off on virtual time: the same code paths, minus the waiting
        return APIClient(s, sleep=vt.sleep, limiter=LocalRateLimiter(s.rate_limit, clock=vt.clock))

    async with Client(build_server(settings_for(sandbox, AP_TIMEOUT_S="2"), client_factory=client)) as c:

        async def call(tool: str, args: dict[str, Any]) -> Any:
            res = await c.call_tool(tool, args)
            outputs.append(text_of(res))
            outputs.append(json.dumps(res.structured_content))
            return res

        links = await broad_session(sandbox, call)
    # a wrong secret: the error names the variables, never the value
    wrong = "wrong-secret-9f8e7d6c5b4a"
    async with Client(build_server(settings_for(sandbox, AP_CLIENT_SECRET=wrong))) as c:
        res = await c.call_tool("list_invoices", {})
        assert res.is_error and "AP_CLIENT_SECRET" in text_of(res)
        outputs.append(text_of(res))

    assert len(sandbox.issued_tokens) >= 5, "the session minted several tokens"
    logs = caplog.text + "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    assert "minted access token" in logs and "tool=get_invoice" in logs, "DEBUG logs were captured"
    assert_absent(logs, {**forbidden_in_logs(sandbox, links), "wrong secret": wrong}, "captured logs")
    assert_absent("\n".join(outputs), {**forbidden_in_results(sandbox), "wrong secret": wrong}, "tool results")
    assert any(link in "\n".join(outputs) for link in links), "links do reach the model"
    record_property("leaks", 0)
    record_property("leak_scan", {"log_records": len(caplog.records), "results": len(outputs), "secrets": len(links)})


async def test_no_secrets_in_stdio_server_stderr(
    sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AP_CLIENT_ID": sandbox.config.client_id,
        "AP_CLIENT_SECRET": sandbox.config.client_secret,
        "AP_BASE_URL": sandbox.base_url,
        "AP_RATE_LIMIT": "1000",
        "AP_TIMEOUT_S": "2",
        **coverage_env(),
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "invoice_mcp", "--log-level", "DEBUG"], env=env, cwd=tempfile.gettempdir()
    )
    outputs: list[str] = []
    with tempfile.TemporaryFile("w+") as stderr:
        async with Client(stdio_client(params, errlog=stderr)) as c:

            async def call(tool: str, args: dict[str, Any]) -> Any:
                res = await c.call_tool(tool, args)
                outputs.append(text_of(res))
                outputs.append(json.dumps(res.structured_content))
                return res

            links = await broad_session(sandbox, call, waits=False)
        stderr.seek(0)
        logs = stderr.read()
    assert "tool=get_invoice" in logs and "DEBUG" in logs, f"server stderr was captured: {logs[:300]!r}"
    assert_absent(logs, forbidden_in_logs(sandbox, links), "stdio server stderr")
    assert_absent("\n".join(outputs), forbidden_in_results(sandbox), "tool results over stdio")
    record_property("leaks", 0)


def test_settings_never_show_the_secret() -> None:
    secret = "s3cr3t-Value-0123456789"
    env = {
        "AP_CLIENT_ID": "id",
        "AP_CLIENT_SECRET": secret,
        "INVOICE_MCP_REDIS_URL": f"redis://:{secret}@localhost:6379/0",
        "INVOICE_MCP_HTTP_TOKEN": secret + "-http",
    }
    s = load_settings(env)
    assert s.client_secret.get_secret_value() == secret
    for shown in (repr(s), str(s), f"{s}", s.model_dump_json(), str(s.model_dump()), repr(s.client_secret)):
        assert secret not in shown
    # every kind of configuration error, with the secret set (and misplaced into other variables)
    bad = {
        **env,
        "AP_ENVIRONMENT": "staging",
        "AP_BASE_URL": "ftp://x",
        "AP_TIMEOUT_S": "soon",
        "AP_RATE_LIMIT": "-1",
        "INVOICE_MCP_CONFIRM": "maybe",
        "INVOICE_MCP_READ_ONLY": "perhaps",
    }
    with pytest.raises(SettingsError) as err:
        load_settings(bad)
    assert secret not in str(err.value) and secret not in repr(err.value)
    with pytest.raises(SettingsError) as err:
        load_settings({"AP_CLIENT_SECRET": secret})
    assert "AP_CLIENT_ID" in str(err.value) and secret not in str(err.value)
