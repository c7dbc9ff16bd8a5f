"""Streamable HTTP transport: ``/mcp`` for MCP, ``/health`` for probes.

Mode: the SDK default, i.e. **stateful streamable HTTP with SSE responses**
(``stateless_http=False``, ``json_response=False``). The SDK's verified matrix
(shared/mcp-sdk.md §4) decides it:

* ``json_response=True`` silently drops progress notifications, and
  summarize_invoices reports progress while it walks every page;
* ``stateless_http`` + ``json_response`` also breaks the Resolve+Elicit
  confirmation of create/archive for legacy (2025-11-25) clients.

With the default mode progress is delivered and Resolve+Elicit works on both
protocol eras. Nothing a tool needs lives in the HTTP session: list cursors are
sealed with a key derived from the API credentials (server.cursor_key) and the
request state of an elicitation round trip with a key derived the same way
(``request_state_keys``), so replicas behind a load balancer that share the
credentials accept each other's cursors and confirmations.

Security:

* Bound to 127.0.0.1 by default, with the SDK's DNS-rebinding protection: a
  foreign ``Host`` gets 421, a foreign ``Origin`` 403. ``--allowed-host`` and
  ``--allowed-origin`` add names for deployments behind a DNS name.
* ``INVOICE_MCP_HTTP_TOKEN`` set → every MCP request needs
  ``Authorization: Bearer <token>`` (401 otherwise; compared in constant time).
  ``/health`` stays open (custom routes are never authenticated).
* A non-loopback bind without a token is refused unless ``--allow-unauthenticated``:
  the server holds live API credentials that can issue payable invoices.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.request_state import RequestStateSecurity
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from invoice_mcp.api.settings import Settings
from invoice_mcp.server import InvoiceMCPServer, build_server

log = logging.getLogger("invoice_mcp.faces.http")

MCP_PATH = "/mcp"
HEALTH_PATH = "/health"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_LOCAL_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOCAL_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


class HTTPConfigError(Exception):
    """The HTTP options are unsafe or inconsistent; the message says what to change."""


@dataclass(frozen=True)
class HTTPOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: Sequence[str] = field(default_factory=tuple)
    allowed_origins: Sequence[str] = field(default_factory=tuple)
    allow_unauthenticated: bool = False


def is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


class StaticTokenVerifier(TokenVerifier):
    """Accepts exactly one bearer token (INVOICE_MCP_HTTP_TOKEN), compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="static", client_id="invoice-mcp-http", scopes=[])
        return None


def check_options(settings: Settings, opts: HTTPOptions) -> None:
    """Refuse what would expose the API credentials to the network unauthenticated."""
    if not (0 <= opts.port <= 65535):
        raise HTTPConfigError(f"--port must be 0-65535 (got {opts.port})")
    if not is_loopback(opts.host) and settings.http_token is None and not opts.allow_unauthenticated:
        raise HTTPConfigError(
            f"refusing to serve on {opts.host}, which is reachable from other machines, without authentication: "
            "anyone who can connect could read invoices and issue payable ones with this server's API key. "
            "Set INVOICE_MCP_HTTP_TOKEN to a long random value (clients then send 'Authorization: Bearer <token>'), "
            "or pass --allow-unauthenticated if a proxy in front of it authenticates every request."
        )


def transport_security(opts: HTTPOptions) -> TransportSecuritySettings | None:
    """Loopback: the local allowlist plus any extra names. Other hosts: the given names only
    (without any, the SDK leaves Host/Origin checking off, as behind a proxy)."""
    hosts: list[str] = []
    for h in opts.allowed_hosts:
        hosts.append(h)
        if not h.endswith(":*") and not h.rsplit(":", 1)[-1].isdigit():
            hosts.append(f"{h}:*")
    origins = list(opts.allowed_origins)
    if is_loopback(opts.host):
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[*_LOCAL_HOSTS, *hosts],
            allowed_origins=[*_LOCAL_ORIGINS, *origins],
        )
    if hosts or origins:
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )
    return None


def request_state_keys(settings: Settings) -> list[bytes]:
    """Key for sealing elicitation round-trip state; equal on every replica with the same credentials."""
    if settings.gateway:
        from invoice_mcp.server.gateway import request_state_keys as gateway_keys

        return gateway_keys(settings)
    return [settings.derive_key("request-state")]


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_http_server(
    settings: Settings, opts: HTTPOptions, *, read_only: bool | None = None, log_level: str = "INFO", port: int
) -> InvoiceMCPServer:
    server_kw: dict[str, Any] = {
        "log_level": log_level,
        "request_state_security": RequestStateSecurity(keys=request_state_keys(settings)),
    }
    if settings.http_token is not None:
        server_kw["token_verifier"] = StaticTokenVerifier(settings.http_token.get_secret_value())
        # A static token has no authorization server: no resource metadata is advertised.
        server_kw["auth"] = AuthSettings(issuer_url=AnyHttpUrl(_url(opts.host, port)), resource_server_url=None)
    server = build_server(settings, read_only=read_only, **server_kw)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    server.custom_route(HEALTH_PATH, methods=["GET"])(health)

    return server


def build_http_app(
    settings: Settings, opts: HTTPOptions, *, read_only: bool | None = None, log_level: str = "INFO", port: int = 0
) -> Starlette:
    """The ASGI app (for tests or for mounting under another ASGI server)."""
    server = build_http_server(settings, opts, read_only=read_only, log_level=log_level, port=port or opts.port)
    from invoice_mcp.faces.events import RETRY_MS, BoundedEventStore  # resumable SSE streams (issue 15)

    return server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(opts),
        host=opts.host,
        event_store=BoundedEventStore(),
        retry_interval=RETRY_MS,
    )


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve_http(
    settings: Settings, opts: HTTPOptions, *, read_only: bool | None = None, log_level: str = "INFO"
) -> None:
    """Check the options, bind, serve until SIGINT/SIGTERM. Raises HTTPConfigError before binding."""
    check_options(settings, opts)
    try:
        sock = _bind(opts.host, opts.port)
    except OSError as exc:
        raise HTTPConfigError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}") from None
    port = int(sock.getsockname()[1])
    app = build_http_app(settings, opts, read_only=read_only, log_level=log_level, port=port)
    if not is_loopback(opts.host) and not opts.allowed_hosts:
        log.warning("Host/Origin checking is off for %s; pass --allowed-host <dns name> to turn it on", opts.host)
    auth = "bearer token required" if settings.http_token is not None else "no authentication"
    log.info(
        "MCP endpoint %s%s (%s); health check %s",
        _url(opts.host, port),
        MCP_PATH,
        auth,
        HEALTH_PATH,
        extra={"keep_urls": True},
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=None,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
