"""Streamable HTTP transport: ``/mcp`` for MCP, ``/health`` for probes.

Mode: the SDK default, i.e. **stateful streamable HTTP with SSE responses**
(``stateless_http=False``, ``json_response=False``), because of how the SDK's
modes behave:

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
  the server holds live API credentials that can issue payable invoices. On such a
  bind the token must be at least 32 characters (``MIN_TOKEN_CHARS``).
* Loopback means any address in 127.0.0.0/8, ``::1`` or ``localhost``: the bound
  address is always an accepted ``Host`` (``--host 127.0.0.2`` answers its own name).

Resource bounds:

* A connection must complete its request headers within ``HEADER_TIMEOUT_S`` and its
  body within ``BODY_TIMEOUT_S`` of the headers, or it is closed (slowloris: stalled
  sockets would otherwise be held forever). Idle keep-alive connections close after
  uvicorn's ``timeout_keep_alive``, and uvicorn's ``h11_max_incomplete_event_size``
  caps the request line and headers. Long SSE responses are unaffected: the deadlines
  only run while the *client* is still sending. The deadlines are this module's own
  because uvicorn has none for a request still arriving (its keep-alive timer stops
  at a request's first byte), and the server must be safe without a proxy in front.
* At most ``--max-sessions`` stateful sessions (default 1000; one more gets 503), each
  closed after ``--session-idle-timeout`` seconds without a request (default 600); one set of
  credentials holds at most ``--max-sessions-per-tenant`` of them (faces/sessions.py, which also
  binds every session to the credentials that opened it).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11
import uvicorn
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.request_state import RequestStateSecurity
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from invoice_mcp.api.settings import Settings
from invoice_mcp.server import InvoiceMCPServer, build_server

if TYPE_CHECKING:
    from invoice_mcp.faces.oauth.app import OAuthSetup

log = logging.getLogger("invoice_mcp.faces.http")

MCP_PATH = "/mcp"
HEALTH_PATH = "/health"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_LOCAL_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOCAL_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
MIN_TOKEN_CHARS = 32
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 5.0
DEFAULT_MAX_SESSIONS = 1000
DEFAULT_SESSION_IDLE_S = 600.0


class HTTPConfigError(Exception):
    """The HTTP options are unsafe or inconsistent; the message says what to change."""


@dataclass(frozen=True)
class HTTPOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: Sequence[str] = field(default_factory=tuple)
    allowed_origins: Sequence[str] = field(default_factory=tuple)
    allow_unauthenticated: bool = False
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_sessions_per_owner: int | None = None
    """Sessions one set of credentials may hold (None: all of them, or a tenth in gateway mode)."""
    session_idle_timeout_s: float = DEFAULT_SESSION_IDLE_S
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S


def is_loopback(host: str) -> bool:
    """localhost, any 127.0.0.0/8 address, ::1 (in any spelling, bracketed or not)."""
    h = host.strip().strip("[]").lower().rstrip(".")
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _host_patterns(host: str) -> tuple[str, str]:
    """(Host pattern, Origin pattern) for the bound address itself."""
    h = host.strip().strip("[]")
    name = f"[{h}]" if ":" in h else h
    return f"{name}:*", f"http://{name}:*"


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus deadlines while the client is still sending.

    From the connection (or the first byte of a next request) the request headers
    must be complete within `header_timeout` seconds, then the body within
    `body_timeout`; otherwise the socket is closed. The deadlines are absolute, so
    trickling a byte at a time does not extend them. Once the request is fully
    received no deadline runs (an SSE response may stream for as long as it likes).
    """

    header_timeout: float = HEADER_TIMEOUT_S
    body_timeout: float = BODY_TIMEOUT_S
    expired: int = 0  # class-wide count, for the bench and tests

    def connection_made(self, transport: Any) -> None:
        self._deadline: Any = None
        self._phase: str | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._arm()

    def _arm(self) -> None:
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self._phase:
            return  # same phase: the absolute deadline stands
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None and not self.transport.is_closing():
            limit = self.header_timeout if phase == "headers" else self.body_timeout
            self._deadline = self.loop.call_later(limit, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            DeadlineH11Protocol.expired += 1
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)


def protocol_for(opts: HTTPOptions) -> type[DeadlineH11Protocol]:
    return type(
        "DeadlineH11",
        (DeadlineH11Protocol,),
        {"header_timeout": opts.header_timeout_s, "body_timeout": opts.body_timeout_s},
    )


class StaticTokenVerifier(TokenVerifier):
    """Accepts exactly one bearer token (INVOICE_MCP_HTTP_TOKEN), compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="static", client_id="invoice-mcp-http", scopes=[])
        return None


def check_options(settings: Settings, opts: HTTPOptions, *, oauth: bool = False) -> None:
    """Refuse what would expose the API credentials to the network unauthenticated."""
    if not (0 <= opts.port <= 65535):
        raise HTTPConfigError(f"--port must be 0-65535 (got {opts.port})")
    if opts.max_sessions < 1:
        raise HTTPConfigError(f"--max-sessions must be at least 1 (got {opts.max_sessions})")
    if opts.max_sessions_per_owner is not None and opts.max_sessions_per_owner < 1:
        raise HTTPConfigError(f"--max-sessions-per-tenant must be at least 1 (got {opts.max_sessions_per_owner})")
    if not opts.session_idle_timeout_s > 0 or opts.session_idle_timeout_s == float("inf"):
        raise HTTPConfigError(
            f"--session-idle-timeout must be a positive number of seconds (got {opts.session_idle_timeout_s})"
        )
    token = settings.http_token.get_secret_value() if settings.http_token is not None else None
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        if not is_loopback(opts.host):
            raise HTTPConfigError(
                f"INVOICE_MCP_HTTP_TOKEN is {len(token)} characters; on {opts.host}, which other machines can "
                f"reach, it must be at least {MIN_TOKEN_CHARS} random characters. Generate one: "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        log.warning("INVOICE_MCP_HTTP_TOKEN is short (%d characters); use %d or more", len(token), MIN_TOKEN_CHARS)
    if oauth and settings.http_token is not None:
        raise HTTPConfigError(
            "--auth oauth and INVOICE_MCP_HTTP_TOKEN exclude each other: OAuth clients get their tokens from "
            "this server's sign-in; unset INVOICE_MCP_HTTP_TOKEN (or drop --auth oauth)"
        )
    if not is_loopback(opts.host) and settings.redis_url is None:
        log.warning(
            "serving on %s without INVOICE_MCP_REDIS_URL: if this server runs as one of several replicas, "
            "the duplicate-create guard only sees the others' invoices once the API has them (two identical "
            "creates reaching two replicas at the same moment can both go through) and each replica paces "
            "the API on its own. Set INVOICE_MCP_REDIS_URL on every replica to share them.",
            opts.host,
        )
    if oauth:
        return
    if not is_loopback(opts.host) and settings.http_token is None and not opts.allow_unauthenticated:
        raise HTTPConfigError(
            f"refusing to serve on {opts.host}, which is reachable from other machines, without authentication: "
            "anyone who can connect could read invoices and issue payable ones with this server's API key. "
            "Set INVOICE_MCP_HTTP_TOKEN to a long random value (clients then send 'Authorization: Bearer <token>'), "
            "or pass --allow-unauthenticated if a proxy in front of it authenticates every request."
        )


def transport_security(opts: HTTPOptions, public_url: str | None = None) -> TransportSecuritySettings | None:
    """Loopback: the local allowlist plus any extra names. Other hosts: the given names only
    (without any, the SDK leaves Host/Origin checking off, as behind a proxy). In OAuth mode
    the public URL's host and origin are always allowed."""
    hosts: list[str] = []
    extra_hosts = list(opts.allowed_hosts)
    origins = list(opts.allowed_origins)
    if public_url is not None:
        extra_hosts.append(urlsplit(public_url).netloc)
        origins.append(public_url)
    for h in extra_hosts:
        hosts.append(h)
        if not h.endswith(":*") and not h.rsplit(":", 1)[-1].isdigit():
            hosts.append(f"{h}:*")
    if is_loopback(opts.host):
        own_host, own_origin = _host_patterns(opts.host)  # e.g. 127.0.0.2: answer its own name
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(dict.fromkeys([*_LOCAL_HOSTS, own_host, *hosts])),
            allowed_origins=list(dict.fromkeys([*_LOCAL_ORIGINS, own_origin, *origins])),
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
    settings: Settings,
    opts: HTTPOptions,
    *,
    read_only: bool | None = None,
    log_level: str = "INFO",
    port: int,
    oauth: OAuthSetup | None = None,
) -> InvoiceMCPServer:
    from invoice_mcp.faces.sessions import request_state_principal

    server_kw: dict[str, Any] = {"log_level": log_level}
    if oauth is not None:
        server_kw.update(oauth.server_kw())
    else:
        server_kw["request_state_security"] = RequestStateSecurity(
            keys=request_state_keys(settings), bind_principal=request_state_principal(settings.gateway)
        )
    if oauth is None and settings.http_token is not None:
        server_kw["token_verifier"] = StaticTokenVerifier(settings.http_token.get_secret_value())
        # A static token has no authorization server: no resource metadata is advertised.
        server_kw["auth"] = AuthSettings(issuer_url=AnyHttpUrl(_url(opts.host, port)), resource_server_url=None)
    server = build_server(settings, read_only=read_only, **server_kw)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    server.custom_route(HEALTH_PATH, methods=["GET"])(health)

    return server


def per_owner_cap(settings: Settings, opts: HTTPOptions) -> int:
    """Sessions one owner may hold: as given, else all of them for one account, a tenth in gateway mode."""
    if opts.max_sessions_per_owner is not None:
        return min(opts.max_sessions_per_owner, opts.max_sessions)
    return max(1, opts.max_sessions // 10) if settings.gateway else opts.max_sessions


def build_http_app(
    settings: Settings,
    opts: HTTPOptions,
    *,
    read_only: bool | None = None,
    log_level: str = "INFO",
    port: int = 0,
    oauth: OAuthSetup | None = None,
) -> Starlette:
    """The ASGI app (for tests or for mounting under another ASGI server)."""
    server = build_http_server(
        settings, opts, read_only=read_only, log_level=log_level, port=port or opts.port, oauth=oauth
    )
    from invoice_mcp.faces.events import RETRY_MS, BoundedEventStore  # resumable SSE streams

    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(opts, oauth.config.public_url if oauth is not None else None),
        host=opts.host,
        event_store=BoundedEventStore(),
        retry_interval=RETRY_MS,
        max_sessions=opts.max_sessions,
        session_idle_timeout=opts.session_idle_timeout_s,
    )
    bind_sessions(app, server, settings, opts, requires_auth=settings.http_token is not None or oauth is not None)
    return oauth.finish(app) if oauth is not None else app


def bind_sessions(
    app: Starlette, server: InvoiceMCPServer, settings: Settings, opts: HTTPOptions, *, requires_auth: bool
) -> None:
    """Wrap the MCP endpoint in `SessionOwners` (faces/sessions.py), inside authentication."""
    from starlette.routing import Route

    from invoice_mcp.faces.sessions import SessionOwners

    manager = server.session_manager
    live: dict[str, Any] = getattr(manager, "_server_instances", {})  # the SDK's sessions, by internal id
    for route in app.routes:
        if isinstance(route, Route) and route.path == MCP_PATH:
            route.app = SessionOwners(
                route.app,
                gateway=settings.gateway,
                per_owner=per_owner_cap(settings, opts),
                alive=live.__contains__,
                requires_auth=requires_auth,
            )
            return
    raise RuntimeError(f"no {MCP_PATH} route to bind sessions on")


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


def uvicorn_config(app: Starlette, opts: HTTPOptions) -> uvicorn.Config:
    """uvicorn with request deadlines (DeadlineH11Protocol) and a short keep-alive."""
    return uvicorn.Config(
        app,
        log_config=None,
        log_level=None,
        timeout_graceful_shutdown=2,
        lifespan="on",
        http=protocol_for(opts),
        timeout_keep_alive=int(KEEP_ALIVE_S),
        h11_max_incomplete_event_size=64 * 1024,
    )


def serve_http(
    settings: Settings,
    opts: HTTPOptions,
    *,
    read_only: bool | None = None,
    log_level: str = "INFO",
    oauth: OAuthSetup | None = None,
) -> None:
    """Check the options, bind, serve until SIGINT/SIGTERM. Raises HTTPConfigError before binding."""
    check_options(settings, opts, oauth=oauth is not None)
    try:
        sock = _bind(opts.host, opts.port)
    except OSError as exc:
        raise HTTPConfigError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}") from None
    port = int(sock.getsockname()[1])
    app = build_http_app(settings, opts, read_only=read_only, log_level=log_level, port=port, oauth=oauth)
    if not is_loopback(opts.host) and not opts.allowed_hosts:
        log.warning("Host/Origin checking is off for %s; pass --allowed-host <dns name> to turn it on", opts.host)
    auth = "bearer token required" if settings.http_token is not None else "no authentication"
    if oauth is not None:
        auth = f"OAuth sign-in; public resource {oauth.config.resource}"
    log.info(
        "MCP endpoint %s%s (%s); health check %s",
        _url(opts.host, port),
        MCP_PATH,
        auth,
        HEALTH_PATH,
        extra={"keep_urls": True},
    )
    config = uvicorn_config(app, opts)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
