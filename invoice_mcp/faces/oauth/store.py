"""What the authorization server keeps: clients, grants, authorization codes and tokens.

Only digests of codes and tokens are kept (`digest`), never the values; the linked API
secret and registered client secrets are kept encrypted (the caller encrypts, the store
sees ciphertext). `GrantStore` is the protocol both the in-memory store (tests, one
process) and the SQL stores (SQLite by default, Postgres for replicas) implement; every
operation that must be single-use (a code, a refresh token) is one atomic step here, so
two replicas racing on the same code or refresh token cannot both win.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Literal, Protocol

TokenKind = Literal["access", "refresh"]


def digest(value: str) -> str:
    """The stored name of a code or token: SHA-256, hex. Tokens are 256-bit random values,
    so a plain hash cannot be reversed or guessed."""
    return hashlib.sha256(b"invoice-mcp/oauth/v1|" + value.encode()).hexdigest()


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    metadata_json: str
    """The registered metadata (OAuthClientInformationFull as JSON) without its secret."""
    secret_enc: bytes | None
    created_at: float


@dataclass(frozen=True)
class GrantRecord:
    grant_id: str
    client_id: str
    client_name: str
    scopes: str
    """Space-separated."""
    resource: str
    ap_client_id: str
    ap_secret_enc: bytes
    environment: str
    created_at: float
    revoked_at: float | None = None
    revoked_why: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def __repr__(self) -> str:  # no ciphertext, no key id in logs
        return f"GrantRecord(grant_id={self.grant_id!r}, scopes={self.scopes!r}, active={self.active})"


@dataclass(frozen=True)
class CodeRecord:
    code_digest: str
    grant_id: str
    client_id: str
    redirect_uri: str
    redirect_explicit: bool
    code_challenge: str
    scopes: str
    resource: str
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class TokenRecord:
    token_digest: str
    kind: TokenKind
    grant_id: str
    scopes: str
    expires_at: float
    used: bool = False
    """Refresh tokens: consumed by a rotation (presenting it again is a replay)."""


class GrantStore(Protocol):
    async def put_client(self, client: ClientRecord) -> None: ...

    async def get_client(self, client_id: str) -> ClientRecord | None: ...

    async def put_grant(self, grant: GrantRecord) -> None: ...

    async def get_grant(self, grant_id: str) -> GrantRecord | None: ...

    async def list_grants(self) -> list[GrantRecord]: ...

    async def revoke_grant(self, grant_id: str, at: float, why: str) -> bool:
        """Mark the grant revoked (its codes and tokens die with it); False if unknown or already revoked."""
        ...

    async def put_code(self, code: CodeRecord) -> None: ...

    async def get_code(self, code_digest: str) -> CodeRecord | None: ...

    async def use_code(self, code_digest: str) -> bool:
        """Mark the code used; True only for the one caller that found it unused."""
        ...

    async def put_token(self, token: TokenRecord) -> None: ...

    async def get_token(self, token_digest: str) -> TokenRecord | None: ...

    async def use_token(self, token_digest: str) -> bool:
        """Mark a refresh token consumed; True only for the one caller that found it unused."""
        ...

    async def aclose(self) -> None: ...


class MemoryGrantStore:
    """The store in this process only: tests, and a single throwaway server."""

    def __init__(self) -> None:
        self.clients: dict[str, ClientRecord] = {}
        self.grants: dict[str, GrantRecord] = {}
        self.codes: dict[str, CodeRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}

    async def put_client(self, client: ClientRecord) -> None:
        self.clients[client.client_id] = client

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return self.clients.get(client_id)

    async def put_grant(self, grant: GrantRecord) -> None:
        self.grants[grant.grant_id] = grant

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        return self.grants.get(grant_id)

    async def list_grants(self) -> list[GrantRecord]:
        return sorted(self.grants.values(), key=lambda g: (g.created_at, g.grant_id))

    async def revoke_grant(self, grant_id: str, at: float, why: str) -> bool:
        grant = self.grants.get(grant_id)
        if grant is None or grant.revoked_at is not None:
            return False
        self.grants[grant_id] = replace(grant, revoked_at=at, revoked_why=why)
        return True

    async def put_code(self, code: CodeRecord) -> None:
        self.codes[code.code_digest] = code

    async def get_code(self, code_digest: str) -> CodeRecord | None:
        return self.codes.get(code_digest)

    async def use_code(self, code_digest: str) -> bool:
        code = self.codes.get(code_digest)
        if code is None or code.used:
            return False
        self.codes[code_digest] = replace(code, used=True)
        return True

    async def put_token(self, token: TokenRecord) -> None:
        self.tokens[token.token_digest] = token

    async def get_token(self, token_digest: str) -> TokenRecord | None:
        return self.tokens.get(token_digest)

    async def use_token(self, token_digest: str) -> bool:
        token = self.tokens.get(token_digest)
        if token is None or token.used:
            return False
        self.tokens[token_digest] = replace(token, used=True)
        return True

    async def aclose(self) -> None:
        return None
