"""MCP Apps at the protocol level: what a client that negotiates Apps sees (views bound to four
tools, resources served with the app MIME type and a CSP without external origins), and that a
client that does not sees exactly what it saw before (tools/list differs at most in `_meta`,
results are identical)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.types import ClientCapabilities, ElicitResult, TextResourceContents

from invoice_mcp.api.settings import Settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, VIEWS, client_negotiated_apps, document_csp

from ..conftest import settings_for

pytestmark = pytest.mark.anyio

APPS_AD = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
BOUND = {v.tool: v.uri for v in VIEWS}


def apps_client(settings: Settings, mode: str = "auto", **kw: Any) -> Client:
    return Client(build_server(settings), mode=mode, extensions=[APPS_AD], **kw)  # type: ignore[arg-type]


def wire(tools: list[Any]) -> list[dict[str, Any]]:
    return [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in tools]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_apps_client_sees_a_view_on_four_tools_and_the_rest_unchanged(settings: Settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode) as plain:  # type: ignore[arg-type]
        before = wire((await plain.list_tools()).tools)
    async with apps_client(settings, mode) as c:
        after = wire((await c.list_tools()).tools)
    assert all("_meta" not in t for t in before)
    bound = {t["name"]: t["_meta"]["ui"]["resourceUri"] for t in after if "_meta" in t}
    assert bound == BOUND
    assert [{k: v for k, v in t.items() if k != "_meta"} for t in after] == before


async def test_a_client_that_advertises_the_extension_without_the_mime_type_gets_no_views(settings: Settings) -> None:
    async with Client(build_server(settings), extensions=[advertise(EXTENSION_ID, {"mimeTypes": ["text/x"]})]) as c:
        assert all(t.meta is None for t in (await c.list_tools()).tools)


def test_detection_reads_the_extension_or_the_legacy_experimental_entry() -> None:
    def ctx(**caps: Any) -> Any:
        return SimpleNamespace(session=SimpleNamespace(client_capabilities=ClientCapabilities(**caps)))

    ui = {EXTENSION_ID: {"mimeTypes": [APP_MIME_TYPE]}}
    assert client_negotiated_apps(ctx(extensions=ui))
    assert client_negotiated_apps(ctx(experimental=ui))
    assert not client_negotiated_apps(ctx(experimental={EXTENSION_ID: {"mimeTypes": "text/html"}}))
    assert not client_negotiated_apps(ctx())
    assert not client_negotiated_apps(SimpleNamespace(session=SimpleNamespace(client_capabilities=None)))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_each_view_is_served_as_an_app_with_a_csp_that_names_no_origin(settings: Settings, mode: str) -> None:
    async with apps_client(settings, mode) as c:
        listed = {str(r.uri) for r in (await c.list_resources()).resources}
        assert not any(u.startswith("ui://") for u in listed)  # found through their tools
        for uri in BOUND.values():
            got = (await c.read_resource(uri)).contents
            assert len(got) == 1 and isinstance(got[0], TextResourceContents)
            res = got[0]
            assert res.mime_type == APP_MIME_TYPE
            assert res.meta is not None
            assert res.meta["ui"]["csp"] == {
                "connectDomains": [],
                "resourceDomains": [],
                "frameDomains": [],
                "baseUriDomains": [],
            }
            html = res.text
            assert len(html.encode()) <= 150_000
            assert "http://" not in html and "https://" not in html  # nothing to fetch from anywhere
            script = re.search(r"<script>(.*)</script>", html, re.S)
            style = re.search(r"<style>(.*)</style>", html, re.S)
            assert script and style and html.count("<script") == 1
            assert document_csp(script.group(1), style.group(1)) in html  # only these exact blocks may run


async def test_read_only_mode_has_no_create_view(settings: Settings) -> None:
    async with Client(build_server(settings, read_only=True), extensions=[APPS_AD]) as c:
        bound = {t.name for t in (await c.list_tools()).tools if t.meta}
    assert bound == {"list_invoices", "summarize_invoices", "get_invoice"}


async def calls(c: Client, sandbox: Sandbox) -> list[dict[str, Any]]:
    customer = sandbox.customers()[0]["id"]
    first = (await c.call_tool("list_invoices", {"limit": 5})).structured_content
    assert first is not None
    out = []
    for name, args in [
        ("list_invoices", {"limit": 5}),
        ("list_invoices", {"cursor": first["next_cursor"], "limit": 5}),
        ("summarize_invoices", {}),
        ("get_invoice", {"invoice": first["rows"][0][0]}),
        (
            "create_invoice",
            {
                "customer_id": customer,
                "line_items": [{"description": "Seats", "amount": 12.5, "quantity": 4}],
                "dry_run": True,
            },
        ),
    ]:
        res = await c.call_tool(name, args)
        out.append(res.model_dump(by_alias=True, mode="json", exclude_none=True))
    return out


@pytest.mark.slow
async def test_results_are_the_same_with_and_without_apps(settings: Settings, sandbox: Sandbox) -> None:
    async with Client(build_server(settings)) as plain:
        before = await calls(plain, sandbox)
    async with apps_client(settings) as c:
        after = await calls(c, sandbox)
    for b, a in zip(before, after, strict=True):
        assert a["content"] == b["content"] and a["structuredContent"] == b["structuredContent"]
    # The preview card's only extra rides in _meta (hosts keep it from the model): here, no duplicate.
    assert after[-1]["_meta"]["io.github.invoice-mcp/view"] == {}
    assert all("io.github.invoice-mcp/view" not in (r.get("_meta") or {}) for r in before)


async def test_the_preview_card_is_told_of_a_recent_identical_invoice(settings: Settings, sandbox: Sandbox) -> None:
    async def accept(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"ok": True})

    args = {
        "customer_id": sandbox.customers()[1]["id"],
        "line_items": [{"description": "Audit", "amount": 300, "quantity": 1}],
    }
    async with apps_client(settings, elicitation_callback=accept) as c:
        made = await c.call_tool("create_invoice", args)
        assert made.structured_content and made.structured_content["outcome"] == "created"
        preview = await c.call_tool("create_invoice", {**args, "dry_run": True})
        anyway = await c.call_tool("create_invoice", {**args, "dry_run": True, "allow_duplicate": True})
    assert preview.meta is not None
    warning = preview.meta["io.github.invoice-mcp/view"]["duplicate"]
    assert made.structured_content["invoice_number"] in warning
    assert anyway.meta is not None and anyway.meta["io.github.invoice-mcp/view"] == {}


async def test_rows_kept_out_of_structured_content_reach_the_view_only(sandbox: Sandbox) -> None:
    settings = settings_for(sandbox, INVOICE_MCP_LIST_ROWS="text")
    async with Client(build_server(settings)) as plain:
        before = await plain.call_tool("list_invoices", {"limit": 5})
    async with apps_client(settings) as c:
        after = await c.call_tool("list_invoices", {"limit": 5})
    assert after.content == before.content and after.structured_content == before.structured_content
    assert "rows" not in (after.structured_content or {})
    assert before.meta is None or "io.github.invoice-mcp/view" not in before.meta
    assert after.meta is not None
    extra = after.meta["io.github.invoice-mcp/view"]
    assert [r[0] for r in extra["rows"]] == [i["invoice_number"] for i in sandbox.invoices(include_archived=False)][:5]
    assert extra["next_cursor"]
