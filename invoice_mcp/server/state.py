"""Per-process state of the MCP server (settings, the API client and the invoice service,
made on first use) and the injection point that hands each request its service."""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, cast

from mcp.server.mcpserver import Context

from invoice_mcp.api.settings import Settings
from invoice_mcp.state import LazyStore

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient
    from invoice_mcp.service import InvoiceService
    from invoice_mcp.service.guard import Reservations
    from invoice_mcp.service.journal import Journal


class AppState:
    """Per-process state. The API client (and httpx with it) is made on first use,
    so start-up, which only has to answer tools/list, does not pay for it."""

    def __init__(
        self, settings: Settings, client_factory: ClientFactory | None = None, *, actor: str | None = None
    ) -> None:
        self.settings = settings
        self._factory = client_factory
        self._client: APIClient | None = None
        self._service: InvoiceService | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.actor = actor or local_actor()
        self.state = LazyStore(settings.state_url.get_secret_value() if settings.state_url else None)
        """The state store (write journal), opened on the first write."""

    @property
    def client(self) -> APIClient:
        if self._client is None:
            self._client = self._factory(self.settings) if self._factory else self._new_client()
        return self._client

    @property
    def service(self) -> InvoiceService:
        if self._service is None:
            from invoice_mcp import service  # lazily, with the client

            self._service = service.InvoiceService(
                self.client,
                cursor_key=cursor_key(self.settings),
                reservations=self._reservations(),
                journal=self.journal_for(self.settings, self.client),
                state=self.state,
            )
        return self._service

    def journal_for(self, settings: Settings, client: APIClient) -> Journal:
        """The journal of one account, in this process's state store."""
        from invoice_mcp.service.journal import Journal, scope_of

        return Journal(
            self.state,
            scope_of(settings.cache_key),
            clock=client.clock.now,
            retention_days=settings.journal_retention_days,
        )

    def actor_for(self, ctx: Context[Any, Any]) -> str:
        """Who the journal names for this request's writes (a gateway names the account)."""
        return self.actor

    def _reservations(self) -> Reservations | None:
        """The duplicate guard's store: Redis when configured (shared by replicas), else in memory."""
        if self.settings.redis_url is None:
            return None
        from invoice_mcp.api.shared_state import make_reservations

        store = make_reservations(self.settings)
        if store is not None:
            self._closers.append(store.aclose)
        return store

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

    def _new_client(self) -> APIClient:
        from invoice_mcp.api.client import APIClient

        if self.settings.redis_url is not None:
            from invoice_mcp.api.shared_state import make_shared_state

            shared = make_shared_state(self.settings)
            if shared is not None:
                limiter, store = shared
                for part in (limiter, store):
                    closer = getattr(part, "aclose", None)
                    if closer is not None:
                        self._closers.append(closer)
                return APIClient(self.settings, limiter=limiter, token_store=store)
        return APIClient(self.settings)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        for closer in self._closers:
            await closer()
        await self.state.aclose()


ClientFactory = Callable[[Settings], "APIClient"]


def local_actor() -> str:
    """The person running a local server, as the journal names them."""
    try:
        return "local:" + getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "local"


def actor(ctx: Context[Any, Any]) -> str:
    app = ctx.request_context.lifespan_context
    return app.actor_for(ctx) if isinstance(app, AppState) else "local"


def cursor_key(settings: Settings) -> bytes:
    """Same credentials → same key, so every replica accepts every other's cursors."""
    return settings.derive_key("cursor")


def deps(ctx: Context[Any, Any]) -> tuple[InvoiceService, Settings]:
    """What the registry injects into every handler: the request's service and the settings."""
    app = cast(AppState, ctx.request_context.lifespan_context)
    return app.service_for(ctx), app.settings
