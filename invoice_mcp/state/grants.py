"""OAuth grants at rest: clients, grants, authorization codes and tokens (the ``oauth`` tables).

Only digests of codes and tokens are kept (`digest`), never the values; the linked API
secret and registered client secrets are kept encrypted (the caller encrypts, the store
sees ciphertext). `GrantStore` is the protocol both the in-memory store (tests, one
process) and `SQLGrantStore` (SQLite by default, Postgres for replicas) implement; every
operation that must be single-use (a code, a refresh token) is one atomic step here, so
two replicas racing on the same code or refresh token cannot both win.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeVar

from invoice_mcp.state.store import Schema, StateStore, step

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


Used = TypeVar("Used", CodeRecord, TokenRecord)


def _first_use(records: dict[str, Used], key: str) -> bool:
    """Marks the record used; True only when it was found unused (no await between the check and
    the mark, so one caller wins)."""
    record = records.get(key)
    if record is None or record.used:
        return False
    records[key] = replace(record, used=True)
    return True


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
        return _first_use(self.codes, code_digest)

    async def put_token(self, token: TokenRecord) -> None:
        self.tokens[token.token_digest] = token

    async def get_token(self, token_digest: str) -> TokenRecord | None:
        return self.tokens.get(token_digest)

    async def use_token(self, token_digest: str) -> bool:
        return _first_use(self.tokens, token_digest)

    async def aclose(self) -> None:
        return None


SCHEMA = Schema.of(
    "oauth",
    step(
        "CREATE TABLE oauth_clients (client_id TEXT PRIMARY KEY, metadata_json TEXT NOT NULL, secret_enc TEXT, "
        "created_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE oauth_grants (grant_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, client_name TEXT NOT NULL, "
        "scopes TEXT NOT NULL, resource TEXT NOT NULL, ap_client_id TEXT NOT NULL, ap_secret_enc TEXT NOT NULL, "
        "environment TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION, "
        "revoked_why TEXT NOT NULL DEFAULT '')",
        "CREATE TABLE oauth_codes (code_digest TEXT PRIMARY KEY, grant_id TEXT NOT NULL, client_id TEXT NOT NULL, "
        "redirect_uri TEXT NOT NULL, redirect_explicit BIGINT NOT NULL, code_challenge TEXT NOT NULL, "
        "scopes TEXT NOT NULL, resource TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL, "
        "used BIGINT NOT NULL DEFAULT 0)",
        "CREATE TABLE oauth_tokens (token_digest TEXT PRIMARY KEY, kind TEXT NOT NULL, grant_id TEXT NOT NULL, "
        "scopes TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL, used BIGINT NOT NULL DEFAULT 0)",
        "CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id)",
    ),
)

_GRANT_COLS = (
    "grant_id, client_id, client_name, scopes, resource, ap_client_id, ap_secret_enc, environment, "
    "created_at, revoked_at, revoked_why"
)


def _grant(row: tuple[Any, ...]) -> GrantRecord:
    return GrantRecord(
        grant_id=row[0],
        client_id=row[1],
        client_name=row[2],
        scopes=row[3],
        resource=row[4],
        ap_client_id=row[5],
        ap_secret_enc=str(row[6]).encode(),
        environment=row[7],
        created_at=float(row[8]),
        revoked_at=float(row[9]) if row[9] is not None else None,
        revoked_why=row[10] or "",
    )


class SQLGrantStore:
    """`GrantStore` on the state store (SQLite or Postgres, same SQL). Single-use steps are one
    conditional UPDATE, so of two replicas racing only one sees its row change."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    @classmethod
    async def open(cls, state: StateStore) -> SQLGrantStore:
        await state.ensure(SCHEMA)
        return cls(state)

    async def put_client(self, client: ClientRecord) -> None:
        secret = client.secret_enc.decode() if client.secret_enc is not None else None
        await self.state.execute(
            "INSERT INTO oauth_clients (client_id, metadata_json, secret_enc, created_at) VALUES (?, ?, ?, ?)",
            (client.client_id, client.metadata_json, secret, client.created_at),
        )

    async def get_client(self, client_id: str) -> ClientRecord | None:
        row = await self.state.fetchone(
            "SELECT client_id, metadata_json, secret_enc, created_at FROM oauth_clients WHERE client_id = ?",
            (client_id,),
        )
        if row is None:
            return None
        return ClientRecord(row[0], row[1], str(row[2]).encode() if row[2] is not None else None, float(row[3]))

    async def put_grant(self, grant: GrantRecord) -> None:
        await self.state.execute(
            f"INSERT INTO oauth_grants ({_GRANT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                grant.grant_id,
                grant.client_id,
                grant.client_name,
                grant.scopes,
                grant.resource,
                grant.ap_client_id,
                grant.ap_secret_enc.decode(),
                grant.environment,
                grant.created_at,
                grant.revoked_at,
                grant.revoked_why,
            ),
        )

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        row = await self.state.fetchone(f"SELECT {_GRANT_COLS} FROM oauth_grants WHERE grant_id = ?", (grant_id,))
        return _grant(row) if row is not None else None

    async def list_grants(self) -> list[GrantRecord]:
        rows = await self.state.fetchall(f"SELECT {_GRANT_COLS} FROM oauth_grants ORDER BY created_at, grant_id")
        return [_grant(r) for r in rows]

    async def revoke_grant(self, grant_id: str, at: float, why: str) -> bool:
        n = await self.state.execute(
            "UPDATE oauth_grants SET revoked_at = ?, revoked_why = ? WHERE grant_id = ? AND revoked_at IS NULL",
            (at, why, grant_id),
        )
        return n == 1

    async def put_code(self, code: CodeRecord) -> None:
        await self.state.execute(
            "INSERT INTO oauth_codes (code_digest, grant_id, client_id, redirect_uri, redirect_explicit, "
            "code_challenge, scopes, resource, expires_at, used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                code.code_digest,
                code.grant_id,
                code.client_id,
                code.redirect_uri,
                int(code.redirect_explicit),
                code.code_challenge,
                code.scopes,
                code.resource,
                code.expires_at,
                int(code.used),
            ),
        )

    async def get_code(self, code_digest: str) -> CodeRecord | None:
        row = await self.state.fetchone(
            "SELECT code_digest, grant_id, client_id, redirect_uri, redirect_explicit, code_challenge, scopes, "
            "resource, expires_at, used FROM oauth_codes WHERE code_digest = ?",
            (code_digest,),
        )
        if row is None:
            return None
        return CodeRecord(
            row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], float(row[8]), bool(row[9])
        )

    async def use_code(self, code_digest: str) -> bool:
        n = await self.state.execute(
            "UPDATE oauth_codes SET used = 1 WHERE code_digest = ? AND used = 0", (code_digest,)
        )
        return n == 1

    async def put_token(self, token: TokenRecord) -> None:
        await self.state.execute(
            "INSERT INTO oauth_tokens (token_digest, kind, grant_id, scopes, expires_at, used) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (token.token_digest, token.kind, token.grant_id, token.scopes, token.expires_at, int(token.used)),
        )

    async def get_token(self, token_digest: str) -> TokenRecord | None:
        row = await self.state.fetchone(
            "SELECT token_digest, kind, grant_id, scopes, expires_at, used FROM oauth_tokens WHERE token_digest = ?",
            (token_digest,),
        )
        if row is None:
            return None
        return TokenRecord(row[0], row[1], row[2], row[3], float(row[4]), bool(row[5]))

    async def use_token(self, token_digest: str) -> bool:
        n = await self.state.execute(
            "UPDATE oauth_tokens SET used = 1 WHERE token_digest = ? AND used = 0", (token_digest,)
        )
        return n == 1

    async def aclose(self) -> None:
        await self.state.aclose()
