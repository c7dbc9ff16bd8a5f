"""Each grant acts on its linked account: an isolated service per API key, from the
gateway's tenant registry (service/tenants.py, built by the account factory), so cursors, confirmations, caches, the
duplicate guard and streams never cross accounts, and two grants for one API key share
one API token and one rate limiter (tenants are keyed by the key, not by the grant).

Scopes: ``invoices:read`` allows the read tools, ``invoices:write`` the others too. A
read-only grant sees only the read tools in tools/list (`ScopeFilter`), and a call to a
write tool is answered on HTTP with ``403 insufficient_scope`` naming the scope it needs
(`ScopeGate`, so a client can step up), with the filter refusing it again inside.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import ListToolsResult
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from invoice_mcp.api.settings import Settings
from invoice_mcp.faces.oauth.config import WRITE_SCOPE
from invoice_mcp.faces.oauth.provider import InvoiceAuthProvider
from invoice_mcp.faces.sessions import respond
from invoice_mcp.server.gateway import GatewayState, _held, gateway_accounts
from invoice_mcp.server.registry import TOOLS
from invoice_mcp.server.state import AppState
from invoice_mcp.service.tenants import Tenants

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

    from invoice_mcp.service import InvoiceService

WRITE_TOOLS = frozenset(t.name for t in TOOLS if not t.read_only)
MAX_GATED_BODY = 4 * 1024 * 1024


def token_of(request: Any) -> AccessToken | None:
    user = getattr(request, "scope", {}).get("user") if request is not None else None
    if isinstance(user, AuthenticatedUser):
        return user.access_token
    return get_access_token()


class OAuthState(GatewayState):
    """AppState whose service is the one of the grant the request's access token belongs to."""

    def __init__(self, settings: Settings, provider: InvoiceAuthProvider, tenants: Tenants | None = None) -> None:
        AppState.__init__(self, settings, accounts=gateway_accounts(settings, tenants))
        self.tenants = tenants if tenants is not None else Tenants(settings, self.accounts)
        self.provider = provider

    def service_for(self, ctx: Context[Any, Any]) -> InvoiceService:
        return self._for_token(token_of(ctx.request_context.request))

    def service_for_headers(self, headers: Mapping[str, str] | None) -> InvoiceService:
        return self._for_token(get_access_token())

    def actor_for(self, ctx: Context[Any, Any]) -> str:
        """The grant the request's access token belongs to: who signed in, not which key they linked."""
        token = token_of(ctx.request_context.request)
        return "oauth:" + token.subject if token is not None and token.subject else "oauth"

    def _for_token(self, token: AccessToken | None) -> InvoiceService:
        key = self.provider.cached_key(token.subject) if token is not None and token.subject else None
        if key is None:
            raise ToolError("This connection's sign-in is no longer valid: sign in again from your assistant.")
        try:
            creds = self.tenants.credentials(key.client_id, key.client_secret, key.environment)
        except ValueError:
            raise ToolError(
                f"This connection's API environment ({key.environment}) is no longer offered by this server: "
                "sign in again from your assistant."
            ) from None
        tenant = self.tenants.acquire(creds)
        held = _held.get()
        if held is None:
            self.tenants.release(tenant)
        else:
            held.append(tenant)
        return tenant.service


def may_write(token: AccessToken | None) -> bool:
    return token is not None and WRITE_SCOPE in token.scopes


class ScopeFilter:
    """MCP middleware: a grant without invoices:write lists and calls only the read tools."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and not may_write(token_of(ctx.request)):
            name = (ctx.params or {}).get("name")
            if name in WRITE_TOOLS:
                raise MCPError(
                    -32001, f"{name} needs the {WRITE_SCOPE} scope; this connection was granted read access only"
                )
        result = await call_next(ctx)
        if ctx.method != "tools/list" or may_write(token_of(ctx.request)):
            return result
        if isinstance(result, ListToolsResult):
            return result.model_copy(update={"tools": [t for t in result.tools if t.name not in WRITE_TOOLS]})
        if isinstance(result, dict) and isinstance(result.get("tools"), list):  # the wire form
            tools = [t for t in result["tools"] if not (isinstance(t, dict) and t.get("name") in WRITE_TOOLS)]
            return {**result, "tools": tools}
        return result


def _called_tools(body: bytes) -> list[str]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return []
    messages = doc if isinstance(doc, list) else [doc]
    names = []
    for msg in messages:
        if isinstance(msg, dict) and msg.get("method") == "tools/call":
            params = msg.get("params")
            if isinstance(params, dict) and isinstance(params.get("name"), str):
                names.append(params["name"])
    return names


class ScopeGate:
    """ASGI wrapper of /mcp (inside the bearer middleware): a tools/call of a write tool by a
    token without invoices:write gets 403 insufficient_scope with the scope to ask for."""

    def __init__(self, app: ASGIApp, resource_metadata_url: str) -> None:
        self.app = app
        self.resource_metadata_url = resource_metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if scope["type"] != "http" or scope.get("method") != "POST" or not isinstance(user, AuthenticatedUser):
            await self.app(scope, receive, send)
            return
        if may_write(user.access_token):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away mid-body
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body", False))
            if size > MAX_GATED_BODY:
                await respond(send, 413, b"request body too large", b"text/plain")
                return
        body = b"".join(chunks)
        header_name = dict(scope.get("headers") or []).get(b"mcp-name", b"").decode("latin-1")
        if any(name in WRITE_TOOLS for name in [*_called_tools(body), header_name]):
            await self._forbidden(send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _forbidden(self, send: Send) -> None:
        description = f"this tool changes invoices: it needs the {WRITE_SCOPE} scope"
        www = (
            f'Bearer error="insufficient_scope", scope="{WRITE_SCOPE}", '
            f'resource_metadata="{self.resource_metadata_url}", error_description="{description}"'
        )
        body = json.dumps({"error": "insufficient_scope", "error_description": description, "scope": WRITE_SCOPE})
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", www.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
