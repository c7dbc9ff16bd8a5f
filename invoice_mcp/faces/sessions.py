"""HTTP sessions belong to the credentials that opened them.

The SDK binds a stateful (2025-11-25) session to the bearer token's principal only, and with
one static server token every caller has the same principal: in gateway mode tenant B could use
tenant A's session id (A's results, A's pending confirmation, A's stream) with B's headers or
none. `SessionOwners` wraps the ``/mcp`` endpoint (inside the authentication middleware, so the
authenticated principal is known) and:

* computes the request's **owner**: a SHA-256 digest of the authenticated principal (client,
  issuer, subject of the access token: an OAuth grant is an owner as it is) and, in gateway
  mode, of the API credentials the request carries (environment, client id, digest of the
  secret). Every request on a session must present the same owner (compared in constant
  time), else it gets the SDK's own 404 "Session not found", as if the session did not exist;
* gives clients their own session ids: 256 random bits (`secrets`), mapped to the SDK's
  internal id on the way in and back on the way out. The SDK's log lines name only its
  internal id, which opens nothing from outside; this module logs a short digest prefix;
* caps the sessions one owner holds (credential-less callers are one owner), so one tenant
  cannot make another's ``initialize`` answer 503: with the defaults a tenth of
  ``--max-sessions`` in gateway mode.

Resumption (GET with ``Last-Event-ID``) and elicitation answers travel on the session, so they
are checked against the same owner; the modern era's sealed request state is bound to the same
owner by `request_state_principal`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken, principal_components
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from invoice_mcp.api.keys import secret_digest

log = logging.getLogger("invoice_mcp.faces.sessions")

SESSION_HEADER: Final = b"mcp-session-id"
VERSION_HEADER: Final = b"mcp-protocol-version"
_GATEWAY_HEADERS: Final = (
    "x-alternative-payments-environment",
    "x-alternative-payments-client-id",
    "x-alternative-payments-client-secret",
)
_NOT_FOUND: Final = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
_TOO_MANY: Final = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":'
    b'"Too many open sessions for these credentials; close some (DELETE) or let them expire"}}'
)


def short(session_id: str) -> str:
    """What a log line may say about a session id: a digest prefix, never the id."""
    return "s:" + hashlib.sha256(session_id.encode()).hexdigest()[:10]


def owner_digest(headers: Mapping[str, str], token: AccessToken | None, *, gateway: bool) -> bytes:
    """Who a request acts as: the authenticated principal, and in gateway mode the API
    credentials it carries (the secret only as its digest)."""
    parts: list[str | None] = ["principal", *(principal_components(token) if token is not None else ("-",))]
    if gateway:
        env, client_id, secret = (headers.get(name, "").strip() for name in _GATEWAY_HEADERS)
        parts += ["gateway", env.lower(), client_id, secret_digest(secret) if secret else ""]
    return hashlib.sha256(json.dumps(parts).encode()).digest()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def scope_owner(scope: Scope, *, gateway: bool) -> bytes:
    user = scope.get("user")
    token = user.access_token if isinstance(user, AuthenticatedUser) else None
    return owner_digest(_headers(scope), token, gateway=gateway)


def request_state_principal(gateway: bool) -> Callable[[Any], str | None]:
    """A `RequestStateSecurity.bind_principal`: the sealed state of a confirmation round trip
    (2026-07-28 era) is accepted only from the owner it was sealed for."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    def principal(ctx: Any) -> str | None:
        headers = getattr(getattr(ctx, "request", None), "headers", None)
        token = get_access_token()
        if headers is None and token is None:
            return None  # stdio / in memory: no caller to tell apart
        found = {k.lower(): v for k, v in (headers or {}).items()}
        return owner_digest(found, token, gateway=gateway).hex()

    return principal


@dataclass
class _Session:
    internal: str
    owner: bytes


@dataclass
class SessionStats:
    refused_owner: int = 0
    refused_cap: int = 0
    opened: int = 0


@dataclass
class SessionOwners:
    """ASGI middleware around the MCP endpoint: owner binding, own ids, per-owner caps."""

    app: ASGIApp
    gateway: bool
    per_owner: int
    alive: Callable[[str], bool] = lambda _internal: True
    """Whether the SDK still holds a session (by its internal id): idle-reaped ones free their place."""
    requires_auth: bool = False
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _opening: dict[bytes, int] = field(default_factory=dict)
    stats: SessionStats = field(default_factory=SessionStats)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.requires_auth and not isinstance(scope.get("user"), AuthenticatedUser)):
            await self.app(scope, receive, send)  # the authentication layer answers 401
            return
        raw = dict(scope.get("headers", []))
        version = raw.get(VERSION_HEADER)
        if version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self.app(scope, receive, send)  # the 2026-07-28 era: no sessions (request state is bound)
            return
        owner = scope_owner(scope, gateway=self.gateway)
        presented = raw[SESSION_HEADER].decode("latin-1") if SESSION_HEADER in raw else None
        if presented is None:
            await self._open(owner, scope, receive, send)
            return
        session = self._sessions.get(presented)
        if session is None or not hmac.compare_digest(session.owner, owner):
            if session is not None:
                self.stats.refused_owner += 1
                log.warning("refused a request for session %s: not the credentials that opened it", short(presented))
            await respond(send, 404, _NOT_FOUND)
            return
        status = await self._forward(scope, receive, send, session.internal, presented)
        if status == 404 or (scope.get("method") == "DELETE" and status is not None and status < 300):
            self._sessions.pop(presented, None)
            log.debug("session %s ended", short(presented))

    async def _open(self, owner: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        self._prune()
        held = sum(1 for s in self._sessions.values() if s.owner == owner) + self._opening.get(owner, 0)
        if held >= self.per_owner:
            self.stats.refused_cap += 1
            log.warning("refused a new session: these credentials hold %d (the most one caller may)", held)
            await respond(send, 503, _TOO_MANY)
            return
        self._opening[owner] = self._opening.get(owner, 0) + 1
        answered = False
        external = secrets.token_urlsafe(32)

        def settle() -> None:  # counted as opening until answered: then as a session, or not at all
            nonlocal answered
            if not answered:
                answered = True
                self._opening[owner] -= 1
                if self._opening[owner] <= 0:
                    del self._opening[owner]

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                internal = _swap_header(message, external)
                if internal is not None and message["status"] < 400:
                    self._sessions[external] = _Session(internal, owner)
                    self.stats.opened += 1
                    log.debug("session %s opened", short(external))
                settle()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            settle()

    async def _forward(self, scope: Scope, receive: Receive, send: Send, internal: str, external: str) -> int | None:
        headers = [(k, internal.encode("latin-1") if k == SESSION_HEADER else v) for k, v in scope["headers"]]
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                _swap_header(message, external)
                status.append(message["status"])
            await send(message)

        await self.app({**scope, "headers": headers}, receive, watch)
        return status[0] if status else None

    def _prune(self) -> None:
        for external in [e for e, s in self._sessions.items() if not self.alive(s.internal)]:
            del self._sessions[external]

    def __len__(self) -> int:
        return len(self._sessions)


def _swap_header(message: Message, external: str) -> str | None:
    """Replace the SDK's session id in a response's headers by the client's; return the SDK's."""
    found: str | None = None
    headers = []
    for k, v in message.get("headers", []):
        if k.lower() == SESSION_HEADER:
            found = v.decode("latin-1")
            v = external.encode("latin-1")
        headers.append((k, v))
    message["headers"] = headers
    return found


async def respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    """A whole response from ASGI middleware that answers before the app is reached."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
