"""Puts the OAuth pieces on the HTTP app: the SDK's authorization-server routes and bearer
middleware (configured through `AuthSettings`), plus this package's connect page, the
scope gate on /mcp, protected-resource metadata in both forms and client-id metadata
document support advertised in the authorization-server metadata."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.routes import (
    build_metadata,
    build_resource_metadata_url,
    cors_middleware,
    create_protected_resource_routes,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.request_state import RequestStateSecurity
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from invoice_mcp.api.errors import APIError, CredentialsError
from invoice_mcp.api.keys import derive_key
from invoice_mcp.api.settings import Settings
from invoice_mcp.faces.oauth.accounts import OAuthState, ScopeFilter, ScopeGate
from invoice_mcp.faces.oauth.config import SCOPES, OAuthConfig
from invoice_mcp.faces.oauth.pages import ConnectPage
from invoice_mcp.faces.oauth.provider import InvoiceAuthProvider, LinkedKey
from invoice_mcp.faces.oauth.store import GrantStore
from invoice_mcp.server.accounts import Accounts
from invoice_mcp.server.state import AppState
from invoice_mcp.service.tenants import Tenants, environments

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
AS_METADATA_PATH = "/.well-known/oauth-authorization-server"
PRM_ROOT_PATH = "/.well-known/oauth-protected-resource"


@dataclass
class OAuthSetup:
    """Everything OAuth mode needs, made once per server (the app's lifespan reuses it)."""

    settings: Settings
    config: OAuthConfig
    store: GrantStore
    provider: InvoiceAuthProvider = field(init=False)
    tenants: Tenants = field(init=False)

    def __post_init__(self) -> None:
        self.provider = InvoiceAuthProvider(self.config, self.store)
        self.tenants = Tenants(self.settings, Accounts(self.settings, many=True))

    def close(self) -> None:
        """Close the state store (after the server stopped)."""
        anyio.run(self.store.aclose)

    def auth_settings(self) -> AuthSettings:
        # From strings, so the URLs keep their exact spelling (RFC 8414 issuers compare as strings).
        return AuthSettings.model_validate(
            {
                "issuer_url": self.config.issuer,
                "resource_server_url": self.config.resource,
                "validate_token_resource": True,
                "client_registration_options": ClientRegistrationOptions(
                    enabled=True, valid_scopes=list(SCOPES), default_scopes=list(SCOPES)
                ),
                "revocation_options": RevocationOptions(enabled=True),
            }
        )

    def server_kw(self) -> dict[str, Any]:
        """Keyword arguments for build_server in OAuth mode."""
        key = derive_key(self.config.state_key.decode(), "request-state", "oauth")
        return {
            "auth_server_provider": self.provider,
            "auth": self.auth_settings(),
            "middleware": [ScopeFilter()],
            "request_state_security": RequestStateSecurity(keys=[key]),
            "state_factory": self.state,
        }

    def state(self, settings: Settings) -> AppState:
        return OAuthState(settings, self.provider, self.tenants)

    async def check_key(self, key: LinkedKey) -> str | None:
        """Mint an API token with the key (in the tenant it will use, so the token is reused)."""
        try:
            creds = self.tenants.credentials(key.client_id, key.client_secret, key.environment)
        except ValueError:
            return f"Choose one of the environments: {', '.join(sorted(environments(self.settings)))}."
        tenant = self.tenants.acquire(creds)
        try:
            await tenant.client.tokens.get()
        except CredentialsError:
            return (
                f"Alternative Payments did not accept this client ID and secret for the {key.environment} "
                "environment. Check both, and that the environment matches the key, then try again."
            )
        except APIError:
            return "Alternative Payments could not be reached to check the key. Try again in a moment."
        finally:
            self.tenants.release(tenant)
        return None

    def finish(self, app: Starlette) -> Starlette:
        """Routes the SDK does not make (or makes differently) in OAuth mode."""
        opts = self.auth_settings()  # its URLs keep the exact spelling (no trailing slash on the issuer)
        assert opts.resource_server_url is not None
        resource = opts.resource_server_url
        metadata_url = str(build_resource_metadata_url(resource))
        prm = create_protected_resource_routes(
            resource_url=resource,
            authorization_servers=[opts.issuer_url],
            scopes_supported=list(SCOPES),
            resource_name="Alternative Payments invoices",
        )
        prm_root = Route(PRM_ROOT_PATH, endpoint=prm[0].endpoint, methods=["GET", "OPTIONS"])
        as_metadata = build_metadata(
            opts.issuer_url,
            None,
            opts.client_registration_options or ClientRegistrationOptions(),
            opts.revocation_options or RevocationOptions(),
        )
        as_metadata.client_id_metadata_document_supported = True
        as_metadata.token_endpoint_auth_methods_supported = ["none", "client_secret_post", "client_secret_basic"]
        as_route = Route(
            AS_METADATA_PATH,
            endpoint=cors_middleware(MetadataHandler(as_metadata).handle, ["GET", "OPTIONS"]),
            methods=["GET", "OPTIONS"],
        )
        page = ConnectPage(self.provider, environments(self.settings), self.settings.environment, self.check_key)
        routes: list[BaseRoute] = []
        for route in app.router.routes:
            path = getattr(route, "path", None)
            if path == AS_METADATA_PATH:
                routes.append(as_route)
            elif path == prm[0].path:
                routes.append(prm[0])
            elif path == MCP_PATH and isinstance(route, Route):
                route.app = ScopeGate(route.app, metadata_url)
                routes.append(route)
            else:
                routes.append(route)
        routes.extend([prm_root, *page.routes()])
        app.router.routes = routes
        return app
