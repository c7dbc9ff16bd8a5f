"""Gateway mode: one HTTP server for many partner accounts.

The server holds no API credentials. Every MCP request (an HTTP POST, in either
protocol era) carries the caller's own in headers, the same names other
gateways for this API use:

    X-Alternative-Payments-Client-Id       required
    X-Alternative-Payments-Client-Secret   required
    X-Alternative-Payments-Environment     optional: production | demo (default: AP_ENVIRONMENT)

An environment is a name mapped to a base URL by the server's own settings; a
request can never point the server at a URL of its choosing.

`GatewayState.service_for(ctx)` reads the headers of the request being served
(`ctx.headers`) and returns that tenant's `InvoiceService` from the `Tenants`
registry (service/tenants.py: isolation, caching, eviction). Missing or partial
credentials are a tool error naming the headers; no header value is ever echoed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from invoice_mcp.api.keys import derive_key
from invoice_mcp.api.settings import Settings
from invoice_mcp.server.accounts import Accounts
from invoice_mcp.server.state import AppState
from invoice_mcp.service.tenants import Credentials, Tenant, Tenants, environments

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.service import InvoiceService

log = logging.getLogger(__name__)

CLIENT_ID_HEADER: Final = "X-Alternative-Payments-Client-Id"
CLIENT_SECRET_HEADER: Final = "X-Alternative-Payments-Client-Secret"
ENVIRONMENT_HEADER: Final = "X-Alternative-Payments-Environment"
MAX_HEADER_LEN: Final = 512

_held: ContextVar[list[Tenant] | None] = ContextVar("invoice_mcp_gateway_held", default=None)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name) or headers.get(name.lower()) or ""
    return value.strip()


def _usable(value: str) -> bool:
    return 0 < len(value) <= MAX_HEADER_LEN and value.isascii() and value.isprintable()


def credentials_from_headers(headers: Mapping[str, str] | None, tenants: Tenants) -> Credentials:
    """The request's credentials; a ToolError naming the headers when they are missing or unusable."""
    how = (
        f"This server is a gateway: send your Alternative Payments API credentials on every request in the "
        f"HTTP headers {CLIENT_ID_HEADER} and {CLIENT_SECRET_HEADER} (optionally {ENVIRONMENT_HEADER}: "
        f"{' or '.join(sorted(environments(tenants.settings)))}). Set them in your MCP client's headers for this "
        "server (Partner Dashboard → API Keys)."
    )
    if headers is None:
        raise ToolError(f"No HTTP request headers reached this call. {how}")
    client_id = _header(headers, CLIENT_ID_HEADER)
    secret = _header(headers, CLIENT_SECRET_HEADER)
    pairs = ((CLIENT_ID_HEADER, client_id), (CLIENT_SECRET_HEADER, secret))
    missing = [name for name, value in pairs if not value]
    if missing:
        raise ToolError(f"Missing header {' and '.join(missing)}. {how}")
    bad = [name for name, value in pairs if not _usable(value)]
    if bad:
        raise ToolError(
            f"Header {' and '.join(bad)} is not a usable credential (printable ASCII, at most "
            f"{MAX_HEADER_LEN} characters). {how}"
        )
    env = _header(headers, ENVIRONMENT_HEADER) or None
    try:
        return tenants.credentials(client_id, secret, env)
    except ValueError:
        raise ToolError(
            f"Header {ENVIRONMENT_HEADER} must be one of: {', '.join(sorted(environments(tenants.settings)))} "
            f"(it names an API environment; the server maps it to a URL). {how}"
        ) from None


class GatewayState(AppState):
    """AppState whose service is chosen per request, from the credentials the request carries."""

    def __init__(self, settings: Settings, tenants: Tenants | None = None) -> None:
        super().__init__(settings, accounts=gateway_accounts(settings, tenants))
        self.tenants = tenants if tenants is not None else Tenants(settings, self.accounts)
        log.info(
            "gateway mode: API credentials per request in the headers %s and %s; "
            "up to %d tenants, idle ones evicted after %.0f s",
            CLIENT_ID_HEADER,
            CLIENT_SECRET_HEADER,
            self.tenants.max_tenants,
            self.tenants.idle_s,
        )

    @property
    def service(self) -> InvoiceService:
        raise RuntimeError("gateway mode has no service of its own: use service_for(ctx)")

    @property
    def client(self) -> APIClient:
        raise RuntimeError("gateway mode has no API client of its own: use service_for(ctx).client")

    def service_for(self, ctx: Context[Any, Any]) -> InvoiceService:
        return self.service_for_headers(ctx.headers)

    def service_for_headers(self, headers: Mapping[str, str] | None) -> InvoiceService:
        creds = credentials_from_headers(headers, self.tenants)
        tenant = self.tenants.acquire(creds)
        held = _held.get()
        if held is None:  # outside a tool call (a resource read, a completion): nothing to hold it for
            self.tenants.release(tenant)
        else:
            held.append(tenant)
        return tenant.service

    def actor_for(self, ctx: Context[Any, Any]) -> str:
        """The account the request's credentials name (the client id, never the secret)."""
        try:
            return "gateway:" + credentials_from_headers(ctx.headers, self.tenants).client_id
        except ToolError:  # no credentials: the write fails anyway, before the journal
            return "gateway"

    def request_scope(self) -> AbstractContextManager[None]:
        return self._scope()

    @contextmanager
    def _scope(self) -> Iterator[None]:
        token = _held.set([])
        try:
            yield
        finally:
            held = _held.get() or []
            _held.reset(token)
            for tenant in held:
                self.tenants.release(tenant)

    async def aclose(self) -> None:
        await self.tenants.aclose()
        await super().aclose()


def gateway_accounts(settings: Settings, tenants: Tenants | None) -> Accounts:
    """The account factory of a process serving many accounts: the one `tenants` build with,
    else a new one (its accounts share one connection pool)."""
    if tenants is None:
        return Accounts(settings, many=True)
    if not isinstance(tenants.accounts, Accounts):
        raise TypeError("gateway tenants must be built by the server's Accounts")
    return tenants.accounts


def request_state_keys(settings: Settings) -> list[bytes]:
    """Key sealing elicitation round-trip state in gateway mode (no API secret to derive it from):
    from the server token, so replicas sharing INVOICE_MCP_HTTP_TOKEN accept each other's;
    without a token (loopback only), a random key for this process."""
    if settings.http_token is not None:
        return [derive_key(settings.http_token.get_secret_value(), "request-state", "gateway")]
    log.debug("gateway without INVOICE_MCP_HTTP_TOKEN: confirmations are sealed with a per-process key")
    return [os.urandom(32)]
