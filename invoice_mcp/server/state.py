"""Per-process state of the MCP server (settings, and the account built on first use by the
account factory, server/accounts.py) and the injection point that hands each request its service."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, cast

from mcp.server.mcpserver import Context

from invoice_mcp.api.settings import Settings
from invoice_mcp.server.accounts import Accounts
from invoice_mcp.server.accounts import ClientFactory as AccountClientFactory

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.service import InvoiceService
    from invoice_mcp.state import LazyStore


class AppState:
    """Per-process state. The account (API client, and httpx with it) is made on first use,
    so start-up, which only has to answer tools/list, does not pay for it."""

    def __init__(
        self,
        settings: Settings,
        client_factory: ClientFactory | None = None,
        *,
        actor: str | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.settings = settings
        self.accounts = accounts or Accounts(settings, client_factory=_single_client_hook(client_factory))
        """The account factory: this process's account, and a gateway's tenants, are built by it."""
        self._service: InvoiceService | None = None
        self.actor = actor or local_actor()

    @property
    def state(self) -> LazyStore:
        """The state store (write journals), opened on the first write."""
        return self.accounts.state

    @property
    def client(self) -> APIClient:
        return self.service.client

    @property
    def service(self) -> InvoiceService:
        if self._service is None:
            self._service = self.accounts.service(self.settings)
        return self._service

    def actor_for(self, ctx: Context[Any, Any]) -> str:
        """Who the journal names for this request's writes (a gateway names the account)."""
        return self.actor

    def service_for(self, ctx: Context[Any, Any]) -> InvoiceService:
        """The service for the account this request acts on (one per process; a gateway
        picks it from the request's credentials, server/gateway.py)."""
        return self.service

    def service_for_headers(self, headers: Mapping[str, str] | None) -> InvoiceService:
        """`service_for` for handlers that have the request's headers but no tool Context (completions)."""
        return self.service

    def request_scope(self) -> AbstractContextManager[None]:
        """Brackets one tool call: a gateway holds the tenants it hands out until the call ends."""
        return nullcontext()

    async def aclose(self) -> None:
        if self._service is not None:
            await self._service.client.aclose()
        await self.accounts.aclose()


ClientFactory = Callable[[Settings], "APIClient"]
"""Replaces how the one account's API client is made (tests: a mock transport, a virtual clock)."""


def _single_client_hook(factory: ClientFactory | None) -> AccountClientFactory | None:
    """A single-account client factory as the account factory's hook (the client it makes brings
    its own limiter and token cache)."""
    if factory is None:
        return None
    return lambda settings, _limiter, _store: factory(settings)


def local_actor() -> str:
    """The person running a local server, as the journal names them."""
    try:
        return "local:" + getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "local"


def actor(ctx: Context[Any, Any]) -> str:
    app = ctx.request_context.lifespan_context
    return app.actor_for(ctx) if isinstance(app, AppState) else "local"


def deps(ctx: Context[Any, Any]) -> tuple[InvoiceService, Settings]:
    """What the registry injects into every handler: the request's service and the settings."""
    app = cast(AppState, ctx.request_context.lifespan_context)
    return app.service_for(ctx), app.settings
