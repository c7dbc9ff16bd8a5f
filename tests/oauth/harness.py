"""OAuth-mode servers in this process (uvicorn on a loopback port, in a thread), the SDK's
OAuth client with a browser that fills in the connect page, and token storage for it."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import uvicorn
from cryptography.fernet import Fernet
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from invoice_mcp.api.settings import Settings, load_settings
from invoice_mcp.faces.chromium import HEADLESS, find_chromium
from invoice_mcp.faces.http import HTTPOptions, _bind, build_http_app, uvicorn_config
from invoice_mcp.faces.oauth.app import OAuthSetup
from invoice_mcp.faces.oauth.config import OAuthConfig
from invoice_mcp.faces.oauth.store import GrantStore, MemoryGrantStore
from invoice_mcp.sandbox import Sandbox

CHROMIUM = find_chromium() or "/usr/bin/chromium"
CHROMIUM_ARGS = list(HEADLESS)
STATE_KEY = Fernet.generate_key()
CALLBACK = "http://127.0.0.1:53682/callback"


def oauth_settings(sb: Sandbox) -> Settings:
    return load_settings(
        {"AP_ENVIRONMENT": "demo", "AP_BASE_URL": sb.base_url, "AP_RATE_LIMIT": "1000", "AP_TIMEOUT_S": "5"},
        gateway=True,
    )


@dataclass
class OAuthServer:
    setup: OAuthSetup
    base: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.base + "/mcp"

    @property
    def resource(self) -> str:
        """The resource tokens are bound to (the public URL's /mcp; replicas share it)."""
        return str(self.setup.config.resource)

    @property
    def provider(self) -> Any:
        return self.setup.provider


@contextmanager
def serve_oauth(
    sb: Sandbox,
    store: GrantStore | None = None,
    *,
    access_ttl_s: int = 3600,
    host: str = "127.0.0.1",
    public: str | None = None,
    clock: Any = None,
) -> Iterator[OAuthServer]:
    settings = oauth_settings(sb)
    opts = HTTPOptions(port=0)
    sock = _bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    base = f"http://{host}:{port}"
    config = OAuthConfig(public_url=public or base, state_key=STATE_KEY, access_ttl_s=access_ttl_s, allow_loopback=True)
    setup = OAuthSetup(settings, config, store if store is not None else MemoryGrantStore())
    if clock is not None:
        setup.provider._clock = clock
    app = build_http_app(settings, opts, port=port, oauth=setup, log_level="WARNING")
    server, thread = _start(app, opts, sock)
    try:
        yield OAuthServer(setup, base, server, thread)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn that says when it is listening (or gave up), through an event waited on without a
    timeout: timed waits are unreliable under faketime, which CI runs the suite with."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


def _start(app: Any, opts: HTTPOptions, sock: Any) -> tuple[uvicorn.Server, threading.Thread]:
    server = _Server(uvicorn_config(app, opts))

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            server.ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    server.ready.wait()
    if not server.started:
        raise RuntimeError("server did not start")
    return server, thread


class MemoryTokens:
    """The SDK client's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class Browser:
    """Headless Chromium (Debian's) through playwright: opens the authorization URL, fills in
    the connect page and catches the redirect back to the client."""

    client_id: str
    client_secret: str
    environment: str = "demo"
    action: str = "approve"
    allow_write: bool = True
    screenshot: Path | None = None
    pages: list[str] = field(default_factory=list)
    _url: str | None = None

    async def redirect(self, url: str) -> None:
        self._url = url

    async def callback(self) -> AuthorizationCodeResult:
        assert self._url is not None
        landed = await self.run(self._url)
        query = parse_qs(urlsplit(landed).query)
        if "code" not in query:
            raise RuntimeError(f"no code: {query.get('error')}")
        return AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )

    async def run(self, url: str) -> str:
        from playwright.async_api import Route, async_playwright

        landed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def catch(route: Route) -> None:
            if not landed.done():
                landed.set_result(route.request.url)
            await route.fulfill(status=200, body="ok", content_type="text/plain")

        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)
            try:
                page = await browser.new_page()
                await page.route(CALLBACK.rsplit("/", 1)[0] + "/**", catch)
                await page.goto(url)
                self.pages.append(await page.content())
                await page.fill("#ap_client_id", self.client_id)
                await page.fill("#ap_client_secret", self.client_secret)
                await page.select_option("#ap_environment", self.environment)
                if not self.allow_write and await page.locator("#allow_write").count():
                    await page.uncheck("#allow_write")
                if self.screenshot is not None:
                    await page.screenshot(path=str(self.screenshot), full_page=True)
                await page.click(f"button[value={self.action}]")
                return await asyncio.wait_for(landed, 15)
            finally:
                await browser.close()


def oauth_client(server: OAuthServer, browser: Browser, storage: MemoryTokens, **kw: Any) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="Test assistant",
        redirect_uris=[AnyUrl(CALLBACK)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        server.url, metadata, storage, redirect_handler=browser.redirect, callback_handler=browser.callback, **kw
    )


def http_client(auth: Any = None, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(auth=auth, headers=headers, timeout=30)


# -- the flow by hand (raw HTTP), for the refusal tests ------------------------------------

VERIFIER = "v" * 64


def challenge(verifier: str = VERIFIER) -> str:
    import base64
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


async def register(http: httpx2.AsyncClient, base: str, redirect: str = CALLBACK) -> str:
    resp = await http.post(
        base + "/register",
        json={
            "client_name": "Hand client",
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        },
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["client_id"])


def authorize_params(server: OAuthServer, client_id: str, **over: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "code_challenge": challenge(),
        "code_challenge_method": "S256",
        "state": "st4te",
        "resource": server.resource,
    }
    params.update(over)
    return {k: v for k, v in params.items() if v is not None}


def form_fields(page: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))


async def connect(
    http: httpx2.AsyncClient,
    server: OAuthServer,
    client_id: str,
    key: tuple[str, str],
    *,
    allow_write: bool = True,
    **over: str | None,
) -> str:
    """authorize → the connect page → approve; returns the code."""
    import html

    resp = await http.get(server.base + "/authorize", params=authorize_params(server, client_id, **over))
    assert resp.status_code == 302, resp.text
    page = await http.get(resp.headers["location"])
    assert page.status_code == 200, page.text
    fields = {k: html.unescape(v) for k, v in form_fields(page.text).items()}
    data = {**fields, "ap_client_id": key[0], "ap_client_secret": key[1], "ap_environment": "demo", "action": "approve"}
    if allow_write:
        data["allow_write"] = "1"
    done = await http.post(server.base + "/connect", data=data)
    assert done.status_code == 303, done.text
    query = parse_qs(urlsplit(done.headers["location"]).query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


async def exchange(
    http: httpx2.AsyncClient, server: OAuthServer, client_id: str, code: str, verifier: str = VERIFIER, **over: str
) -> httpx2.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
        "code_verifier": verifier,
        "resource": server.resource,
        **over,
    }
    return await http.post(server.base + "/token", data=data)


async def tokens_for(
    http: httpx2.AsyncClient, server: OAuthServer, key: tuple[str, str], *, allow_write: bool = True
) -> tuple[str, dict[str, Any]]:
    """Register, connect, exchange: (client_id, token response)."""
    client_id = await register(http, server.base)
    code = await connect(http, server, client_id, key, allow_write=allow_write)
    resp = await exchange(http, server, client_id, code)
    assert resp.status_code == 200, resp.text
    return client_id, resp.json()


async def refresh(http: httpx2.AsyncClient, server: OAuthServer, client_id: str, token: str) -> httpx2.Response:
    return await http.post(
        server.base + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client_id,
            "resource": server.resource,
        },
    )


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def mcp_post(
    http: httpx2.AsyncClient, server: OAuthServer, token: str | None, body: Any = None
) -> httpx2.Response:
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post(server.url, json=body if body is not None else INIT, headers=headers)


@asynccontextmanager
async def session(server: OAuthServer, token: str, **kw: Any) -> AsyncIterator[Any]:
    """An SDK Client on /mcp with a fixed bearer token."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(server.url, http_client=http), **kw) as client,
    ):
        yield client


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Any ASGI app on a loopback port in a thread; yields its base URL."""
    opts = HTTPOptions(port=0)
    sock = _bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server, thread = _start(app, opts, sock)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def keep_screenshot(taken: Path, committed: Path, update: bool) -> None:
    """A screenshot is taken on every run (into the test's tmp folder); the committed one in
    tests/oauth/ is rewritten only when snapshots are updated (--update-snapshots)."""
    assert taken.read_bytes().startswith(b"\x89PNG") and taken.stat().st_size > 10_000
    if update:
        committed.write_bytes(taken.read_bytes())
    assert committed.is_file(), f"{committed.name} missing: run with --update-snapshots"
