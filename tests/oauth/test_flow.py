"""End to end through the SDK's own OAuth client: discovery, registration, the connect page in
headless Chromium with the sandbox's key, tokens, tools; refresh, replay, revocation."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestParams, ElicitResult

from invoice_mcp.sandbox import Sandbox
from tests.conftest import text_of
from tests.oauth.harness import (
    Browser,
    MemoryTokens,
    http_client,
    keep_screenshot,
    mcp_post,
    oauth_client,
    refresh,
    serve_oauth,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SHOT = Path(__file__).resolve().parent / "connect_page.png"


async def test_dcr_connect_page_token_tools(sandbox: Sandbox, tmp_path: Path, update_snapshots: bool) -> None:
    with serve_oauth(sandbox) as server:
        browser = Browser(sandbox.config.client_id, sandbox.config.client_secret, screenshot=tmp_path / SHOT.name)
        storage = MemoryTokens()
        auth = oauth_client(server, browser, storage)

        async def accept(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
            return ElicitResult(action="accept", content={"ok": True})

        target = sandbox.invoices(include_archived=False)[0]
        async with http_client(auth) as http:
            connection = streamable_http_client(server.url, http_client=http)
            async with Client(connection, elicitation_callback=accept) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert "create_invoice" in tools and "list_invoices" in tools
                result = await client.call_tool("list_invoices", {"limit": 3})
                assert not result.is_error, text_of(result)
                # a write is journaled under the grant that signed in, not under a bare "gateway"
                archived = await client.call_tool("archive_invoice", {"invoice": target["id"]})
                assert not archived.is_error, text_of(archived)
                activity = await client.call_tool("recent_activity", {})
                assert not activity.is_error, text_of(activity)
        grant_ids = [g.grant_id for g in await server.setup.store.list_grants()]
        assert len(grant_ids) == 1 and f"oauth:{grant_ids[0]}" in text_of(activity)
        first = storage.tokens
        assert first is not None and first.refresh_token
        assert "Test assistant" in browser.pages[0]
        keep_screenshot(tmp_path / SHOT.name, SHOT, update_snapshots)
        # the client takes its access token for expired: it refreshes (no new sign-in) and the pair rotates
        auth.context.token_expiry_time = 1.0
        async with http_client(auth) as http, Client(streamable_http_client(server.url, http_client=http)) as client:
            assert not (await client.call_tool("summarize_invoices", {})).is_error
        second = storage.tokens
        assert second is not None and len(browser.pages) == 1
        assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
        # the first refresh token presented again: the grant is revoked, the newest tokens die with it
        assert storage.client is not None
        async with http_client() as http:
            replay = await refresh(http, server, storage.client.client_id, first.refresh_token)
            assert replay.status_code == 400
            assert (await mcp_post(http, server, second.access_token)).status_code == 401
