"""Client ID Metadata Documents: fetched safely (no private addresses, bounded size, no
redirects), cached per Cache-Control; and the whole flow with one, through the SDK client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from invoice_mcp.faces.oauth.clients import ClientDocumentError, ClientDocuments
from invoice_mcp.sandbox import Sandbox
from tests.conftest import text_of
from tests.oauth.harness import (
    CALLBACK,
    Browser,
    MemoryTokens,
    authorize_params,
    http_client,
    keep_screenshot,
    oauth_client,
    serve_app,
    serve_oauth,
)

pytestmark = pytest.mark.anyio


def doc_app(served: dict[str, int]) -> Starlette:
    def doc(request: Request, **extra: Any) -> dict[str, Any]:
        return {
            "client_id": str(request.url),
            "client_name": "Document client",
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "none",
            **extra,
        }

    async def good(request: Request) -> Response:
        served["good"] = served.get("good", 0) + 1
        return JSONResponse(doc(request), headers={"Cache-Control": "public, max-age=60"})

    async def nostore(request: Request) -> Response:
        return JSONResponse(doc(request), headers={"Cache-Control": "no-store"})

    async def big(request: Request) -> Response:
        return JSONResponse(doc(request, padding="x" * 70_000))

    async def moved(request: Request) -> Response:
        return RedirectResponse("/good.json", status_code=302)

    async def foreign(request: Request) -> Response:
        return JSONResponse({**doc(request), "client_id": "https://someone-else.example/c.json"})

    async def secret(request: Request) -> Response:
        return JSONResponse(doc(request, token_endpoint_auth_method="client_secret_post"))

    paths = {"/good.json": good, "/nostore.json": nostore, "/big.json": big, "/moved.json": moved}
    paths |= {"/foreign.json": foreign, "/secret.json": secret}
    return Starlette(routes=[Route(p, f) for p, f in paths.items()])


async def test_private_and_loopback_addresses_refused_before_connecting() -> None:
    docs = ClientDocuments(allow_loopback=False)
    for url in (
        "https://10.1.2.3/client.json",
        "https://192.168.0.7/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/client.json",
        "https://[::1]/client.json",
        "https://[::ffff:10.0.0.1]/client.json",
    ):
        with pytest.raises(ClientDocumentError, match="private, loopback or reserved"):
            await docs.get(url)

    async def resolves_private(host: str, port: int) -> list[str]:
        return ["10.0.0.8"]

    named = ClientDocuments(resolver=resolves_private)
    with pytest.raises(ClientDocumentError, match="private"):
        await named.get("https://client.example/meta.json")
    for url in ("http://client.example/meta.json", "https://client.example/", "https://u:p@client.example/x"):
        with pytest.raises(ClientDocumentError):
            await named.get(url)


@pytest.mark.slow
async def test_documents_bounded_cached_and_checked() -> None:
    served: dict[str, int] = {}
    now = [0.0]
    with serve_app(doc_app(served)) as base:
        docs = ClientDocuments(allow_loopback=True, clock=lambda: now[0])
        client = await docs.get(base + "/good.json")
        assert client.client_id == base + "/good.json" and client.client_name == "Document client"
        assert client.token_endpoint_auth_method == "none"
        await docs.get(base + "/good.json")
        assert served["good"] == 1  # cached for its max-age
        now[0] += 61
        await docs.get(base + "/good.json")
        assert served["good"] == 2
        await docs.get(base + "/nostore.json")
        await docs.get(base + "/nostore.json")
        assert docs.fetches == 4  # no-store: fetched every time
        for path, why in (
            ("/big.json", "larger than 65536 bytes"),
            ("/moved.json", "redirects are not followed"),
            ("/foreign.json", "not its own URL"),
            ("/secret.json", "must be public"),
        ):
            with pytest.raises(ClientDocumentError, match=why):
                await docs.get(base + path)
        strict = ClientDocuments(allow_loopback=False)
        with pytest.raises(ClientDocumentError):
            await strict.get(base + "/good.json")  # plain http on loopback only when allowed


async def test_authorize_with_a_private_client_id_is_refused(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        server.provider.documents.allow_loopback = False
        async with http_client() as http:
            resp = await http.get(
                server.base + "/authorize", params=authorize_params(server, "https://10.0.0.1/client.json")
            )
            assert resp.status_code == 400
            assert "location" not in resp.headers


SHOT = Path(__file__).resolve().parent / "connect_page_cimd.png"


@pytest.mark.slow
async def test_cimd_flow_through_the_sdk_client(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, update_snapshots: bool
) -> None:
    import mcp.client.auth.oauth2 as sdk_oauth

    # The SDK client accepts only https client-id URLs; the test document is served on loopback http.
    monkeypatch.setattr(sdk_oauth, "is_valid_client_metadata_url", lambda url: bool(url))
    served: dict[str, int] = {}
    with serve_app(doc_app(served)) as docs_base, serve_oauth(sandbox) as server:
        browser = Browser(sandbox.config.client_id, sandbox.config.client_secret, screenshot=tmp_path / SHOT.name)
        storage = MemoryTokens()
        auth = oauth_client(server, browser, storage, client_metadata_url=docs_base + "/good.json")
        async with http_client(auth) as http, Client(streamable_http_client(server.url, http_client=http)) as client:
            result = await client.call_tool("summarize_invoices", {})
            assert not result.is_error, text_of(result)
        assert storage.client is not None and storage.client.client_id == docs_base + "/good.json"
        assert served["good"] >= 1
        keep_screenshot(tmp_path / SHOT.name, SHOT, update_snapshots)
        assert "Document client" in browser.pages[0] and "identified by 127.0.0.1" in browser.pages[0]
        grants = await server.setup.store.list_grants()
        assert [g.client_id for g in grants] == [docs_base + "/good.json"]
        assert json.loads(json.dumps([g.scopes for g in grants])) == ["invoices:read invoices:write"]
