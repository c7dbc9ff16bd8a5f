"""The authorization server's provider (the SDK's ``OAuthAuthorizationServerProvider``).

The SDK's handlers parse and validate the OAuth requests (PKCE S256 only, the code's
redirect URI and verifier, scopes, client authentication); this provider decides who the
clients are, keeps grants, codes and tokens in the `GrantStore`, and adds what the SDK
leaves to it:

* a code is single-use: a second exchange of the same code revokes its grant;
* refresh tokens rotate: each refresh consumes the presented token and issues a new pair;
  presenting a consumed one again (a replay: the token was stolen, or a client copy went
  stale) revokes the whole grant;
* revoking any token (RFC 7009) revokes the grant, access and refresh alike;
* access tokens are verified against the store and trusted for `verify_cache_s` seconds
  (a revoke on another replica takes effect within that); a revoke in this process at once.

Tokens are random (256 bits); the store holds their digests only. Expiry is checked here
with the injected clock (the tokens handed to the SDK carry no wall-clock deadline).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import InvalidToken
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl

from invoice_mcp.faces.oauth.clients import (
    ClientDocumentError,
    ClientDocuments,
    RegisteredClient,
    check_redirect_uris,
    is_metadata_url,
)
from invoice_mcp.faces.oauth.config import CODE_TTL_S, CONNECT_TTL_S, SCOPES, OAuthConfig
from invoice_mcp.faces.oauth.store import (
    ClientRecord,
    CodeRecord,
    GrantRecord,
    GrantStore,
    TokenRecord,
    digest,
)

log = logging.getLogger(__name__)

CONNECT_PATH = "/connect"
ACCESS_PREFIX = "imcp_at_"
REFRESH_PREFIX = "imcp_rt_"
CODE_PREFIX = "imcp_ac_"
MAX_VERIFIED = 10_000


class ConnectError(Exception):
    """The connect page's request cannot go on (expired or forged); the message is for the page."""


@dataclass(frozen=True)
class Pending:
    """An authorization request waiting for the user on the connect page (sealed into the page)."""

    client_id: str
    client_name: str
    redirect_uri: str
    redirect_explicit: bool
    code_challenge: str
    scopes: tuple[str, ...]
    state: str | None
    resource: str


@dataclass(frozen=True)
class LinkedKey:
    """The API key a grant is linked to, decrypted (in memory only)."""

    client_id: str
    client_secret: str
    environment: str

    def __repr__(self) -> str:
        return f"LinkedKey(environment={self.environment!r})"


def _same_resource(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


class GrantCode(AuthorizationCode):
    grant_id: str
    code_digest: str


class GrantRefreshToken(RefreshToken):
    grant_id: str


class InvoiceAuthProvider:
    def __init__(
        self,
        config: OAuthConfig,
        store: GrantStore,
        *,
        documents: ClientDocuments | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self._fernet = config.fernet()
        self.documents = documents or ClientDocuments(allow_loopback=config.allow_loopback)
        self._clock = clock
        self._verified: dict[str, tuple[AccessToken, float, float]] = {}  # digest -> (token, expires, checked)
        self._keys: dict[str, LinkedKey] = {}
        self.store_lookups = 0

    # -- secrets at rest ----------------------------------------------------------------

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt_at_time(value.encode(), int(self._clock()))

    def unseal(self, value: bytes, ttl: int | None = None) -> str:
        if ttl is None:
            return self._fernet.decrypt(value).decode()
        return self._fernet.decrypt_at_time(value, ttl, int(self._clock())).decode()

    # -- clients ------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if is_metadata_url(client_id):
            try:
                return await self.documents.get(client_id)
            except ClientDocumentError as exc:
                log.info("client metadata document refused: %s", exc)
                return None
        record = await self.store.get_client(client_id)
        if record is None:
            return None
        data: dict[str, Any] = json.loads(record.metadata_json)
        if record.secret_enc is not None:
            data["client_secret"] = self.unseal(record.secret_enc)
        return RegisteredClient.model_validate(data)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        try:
            check_redirect_uris([str(u) for u in client_info.redirect_uris or []])
        except ValueError as exc:
            raise RegistrationError("invalid_redirect_uri", str(exc)) from None
        data = client_info.model_dump(mode="json", exclude_none=True)
        secret = data.pop("client_secret", None)
        if data.get("client_name"):
            data["client_name"] = str(data["client_name"])[:100]
        await self.store.put_client(
            ClientRecord(
                client_id=client_info.client_id,
                metadata_json=json.dumps(data),
                secret_enc=self.seal(secret) if secret else None,
                created_at=self._clock(),
            )
        )
        log.info("client registered (dynamic registration)")

    # -- authorization ------------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        resource = params.resource or self.config.resource
        if not _same_resource(resource, self.config.resource):
            raise AuthorizeError("invalid_target", "this server issues tokens only for its own /mcp resource")
        registered = (client.scope or " ".join(SCOPES)).split()
        scopes = [s for s in (params.scopes or registered) if s in SCOPES]
        if not scopes:
            raise AuthorizeError("invalid_scope", f"ask for {' or '.join(SCOPES)}")
        scopes.append(SCOPES[0])  # writing implies reading: every grant can read
        pending = Pending(
            client_id=client.client_id,
            client_name=(client.client_name or "")[:100],
            redirect_uri=str(params.redirect_uri),
            redirect_explicit=params.redirect_uri_provided_explicitly,
            code_challenge=params.code_challenge,
            scopes=tuple(s for s in SCOPES if s in scopes),
            state=params.state,
            resource=self.config.resource,
        )
        txn = self.seal(json.dumps(pending.__dict__)).decode()
        return construct_redirect_uri(self.config.issuer + CONNECT_PATH, txn=txn)

    def pending(self, txn: str) -> Pending:
        try:
            raw = self.unseal(txn.encode(), ttl=CONNECT_TTL_S)
        except (InvalidToken, ValueError, TypeError):
            raise ConnectError(
                "This sign-in link has expired or is not valid. Go back to your assistant and connect again."
            ) from None
        data = json.loads(raw)
        data["scopes"] = tuple(data["scopes"])
        return Pending(**data)

    async def approve(self, pending: Pending, key: LinkedKey, scopes: tuple[str, ...]) -> str:
        """Make the grant (the key checked by the caller) and a code; the client's redirect URL."""
        now = self._clock()
        grant = GrantRecord(
            grant_id="g_" + uuid.uuid4().hex[:20],
            client_id=pending.client_id,
            client_name=pending.client_name or pending.client_id,
            scopes=" ".join(scopes),
            resource=pending.resource,
            ap_client_id=key.client_id,
            ap_secret_enc=self.seal(key.client_secret),
            environment=key.environment,
            created_at=now,
        )
        await self.store.put_grant(grant)
        code = CODE_PREFIX + secrets.token_urlsafe(32)
        await self.store.put_code(
            CodeRecord(
                code_digest=digest(code),
                grant_id=grant.grant_id,
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                redirect_explicit=pending.redirect_explicit,
                code_challenge=pending.code_challenge,
                scopes=grant.scopes,
                resource=grant.resource,
                expires_at=now + CODE_TTL_S,
            )
        )
        log.info("grant %s approved (%s)", grant.grant_id, grant.scopes)
        return construct_redirect_uri(pending.redirect_uri, code=code, state=pending.state, iss=self.config.issuer)

    @staticmethod
    def denied(pending: Pending) -> str:
        return construct_redirect_uri(
            pending.redirect_uri, error="access_denied", error_description="the user denied access", state=pending.state
        )

    # -- codes and tokens ---------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> GrantCode | None:
        record = await self.store.get_code(digest(authorization_code))
        if record is None or record.client_id != client.client_id:
            return None
        if record.used:
            await self.revoke_grant(record.grant_id, "authorization code used twice")
            return None
        if self._clock() >= record.expires_at:
            return None
        return GrantCode(
            code="",
            code_digest=record.code_digest,
            grant_id=record.grant_id,
            scopes=record.scopes.split(),
            expires_at=float("inf"),  # checked above with this server's clock
            client_id=record.client_id,
            code_challenge=record.code_challenge,
            redirect_uri=AnyUrl(record.redirect_uri),
            redirect_uri_provided_explicitly=record.redirect_explicit,
            resource=record.resource,
            subject=record.grant_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: GrantCode
    ) -> OAuthToken:
        first = await self.store.use_code(authorization_code.code_digest)
        return await self._issue_once(
            first, authorization_code.grant_id, None, "authorization code", why="authorization code used twice"
        )

    async def _issue(self, grant: GrantRecord, scopes: list[str]) -> OAuthToken:
        now = self._clock()
        access = ACCESS_PREFIX + secrets.token_urlsafe(32)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        scope = " ".join(scopes)
        await self.store.put_token(
            TokenRecord(digest(access), "access", grant.grant_id, scope, now + self.config.access_ttl_s)
        )
        await self.store.put_token(
            TokenRecord(digest(refresh), "refresh", grant.grant_id, scope, now + self.config.refresh_ttl_s)
        )
        return OAuthToken(access_token=access, expires_in=self.config.access_ttl_s, scope=scope, refresh_token=refresh)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> GrantRefreshToken | None:
        record = await self.store.get_token(digest(refresh_token))
        if record is None or record.kind != "refresh":
            return None
        grant = await self.store.get_grant(record.grant_id)
        if grant is None or not grant.active or grant.client_id != client.client_id:
            return None
        if record.used:
            log.warning("grant %s: a consumed refresh token was presented again; grant revoked", grant.grant_id)
            await self.revoke_grant(grant.grant_id, "refresh token replayed")
            return None
        if self._clock() >= record.expires_at:
            return None
        return GrantRefreshToken(
            token=record.token_digest,
            grant_id=grant.grant_id,
            client_id=grant.client_id,
            scopes=record.scopes.split(),
            resource=grant.resource,
            subject=grant.grant_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: GrantRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        first = await self.store.use_token(refresh_token.token)
        return await self._issue_once(
            first, refresh_token.grant_id, scopes, "refresh token", why="refresh token replayed"
        )

    async def _issue_once(
        self, first: bool, grant_id: str, scopes: list[str] | None, what: str, *, why: str
    ) -> OAuthToken:
        """Tokens for a code or refresh token consumed for the first time; a second use revokes the
        whole grant (whoever replays it may hold a stolen copy). No scopes: the grant's own."""
        if not first:
            await self.revoke_grant(grant_id, why)
            raise TokenError("invalid_grant", f"{what} already used; the grant is revoked")
        grant = await self.store.get_grant(grant_id)
        if grant is None or not grant.active:
            raise TokenError("invalid_grant", "the grant was revoked")
        return await self._issue(grant, grant.scopes.split() if scopes is None else scopes)

    async def load_access_token(self, token: str) -> AccessToken | None:
        d = digest(token)
        now = self._clock()
        hit = self._verified.get(d)
        if hit is not None:
            access, expires_at, checked = hit
            if now < expires_at and now - checked < self.config.verify_cache_s:
                return access
            del self._verified[d]
        self.store_lookups += 1
        record = await self.store.get_token(d)
        if record is None or record.kind != "access" or now >= record.expires_at:
            return None
        grant = await self.store.get_grant(record.grant_id)
        if grant is None or not grant.active:
            self._keys.pop(record.grant_id, None)  # revoked elsewhere: forget its key here too
            return None
        if await self.linked_key(grant.grant_id) is None:
            return None
        access = AccessToken(
            token=d,
            client_id=grant.client_id,
            scopes=record.scopes.split(),
            resource=grant.resource,
            subject=grant.grant_id,
        )
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()
        self._verified[d] = (access, record.expires_at, now)
        return access

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        if token.subject:
            await self.revoke_grant(token.subject, "revoked by the client")

    async def revoke_grant(self, grant_id: str, why: str) -> bool:
        done = await self.store.revoke_grant(grant_id, self._clock(), why)
        self._keys.pop(grant_id, None)
        for d in [d for d, (a, _, _) in self._verified.items() if a.subject == grant_id]:
            del self._verified[d]
        if done:
            log.info("grant %s revoked: %s", grant_id, why)
        return done

    # -- the linked account -------------------------------------------------------------

    async def linked_key(self, grant_id: str) -> LinkedKey | None:
        key = self._keys.get(grant_id)
        if key is not None:
            return key
        grant = await self.store.get_grant(grant_id)
        if grant is None or not grant.active:
            return None
        key = LinkedKey(grant.ap_client_id, self.unseal(grant.ap_secret_enc), grant.environment)
        self._keys[grant_id] = key
        return key

    def cached_key(self, grant_id: str) -> LinkedKey | None:
        """The key of a grant whose token was verified (`load_access_token` loads it)."""
        return self._keys.get(grant_id)
