"""End to end through the SDK's own OAuth client: discovery, registration, the connect page in
headless Chromium with the sandbox's key, tokens, tools; refresh, replay, revocation."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from invoice_mcp.sandbox import Sandbox
from tests.conftest import text_of
from tests.oauth.harness import Browser, MemoryTokens, http_client, oauth_client, serve_oauth

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SHOT = Path(__file__).resolve().parent / "connect_page.png"


async def test_dcr_connect_page_token_tools(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        browser = Browser(sandbox.config.client_id, sandbox.config.client_secret, screenshot=SHOT)
        storage = MemoryTokens()
        auth = oauth_client(server, browser, storage)
        async with http_client(auth) as http, Client(streamable_http_client(server.url, http_client=http)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "create_invoice" in tools and "list_invoices" in tools
            result = await client.call_tool("list_invoices", {"limit": 3})
            assert not result.is_error, text_of(result)
        assert storage.tokens is not None and storage.tokens.refresh_token
        assert "Test assistant" in browser.pages[0]
