"""OAuth mode settings. Read from the process environment (and the command line), never
from an implicit ./.env: every one of them decides who may act on which account."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

READ_SCOPE = "invoices:read"
WRITE_SCOPE = "invoices:write"
SCOPES = (READ_SCOPE, WRITE_SCOPE)

DEFAULT_ACCESS_TTL_S = 3600
DEFAULT_REFRESH_TTL_S = 30 * 24 * 3600
CODE_TTL_S = 300
CONNECT_TTL_S = 900
VERIFY_CACHE_S = 2.0
"""How long a verified access token is trusted without asking the store again: a revoke
made on another replica takes effect within this (the issue's bound is 5 s)."""


class OAuthConfigError(Exception):
    """The OAuth settings are missing or unsafe; the message names the setting."""


def is_loopback_host(host: str) -> bool:
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OAuthConfig:
    public_url: str
    """Origin the clients reach this server at (https://mcp.example.com), no trailing slash."""
    state_key: bytes
    """Fernet key (url-safe base64 of 32 bytes): encrypts API secrets, seals connect-page state."""
    access_ttl_s: int = DEFAULT_ACCESS_TTL_S
    refresh_ttl_s: int = DEFAULT_REFRESH_TTL_S
    allow_loopback: bool = False
    verify_cache_s: float = VERIFY_CACHE_S

    @property
    def issuer(self) -> str:
        return self.public_url

    @property
    def resource(self) -> str:
        return self.public_url + "/mcp"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def fernet(self) -> Fernet:
        return Fernet(self.state_key)

    def __repr__(self) -> str:  # never print the key
        return f"OAuthConfig(public_url={self.public_url!r}, access_ttl_s={self.access_ttl_s})"


def check_public_url(url: str, *, allow_loopback: bool) -> str:
    raw = url.strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise OAuthConfigError(
            f"INVOICE_MCP_PUBLIC_URL / --public-url must be an origin such as https://mcp.example.com (got {url!r})"
        )
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise OAuthConfigError(
            f"INVOICE_MCP_PUBLIC_URL / --public-url must be an origin only (scheme, host, optional port), "
            f"without path, query or credentials (got {url!r}); MCP is served at its /mcp"
        )
    if parts.scheme == "http" and not (allow_loopback and is_loopback_host(parts.hostname)):
        raise OAuthConfigError(
            f"INVOICE_MCP_PUBLIC_URL must be https:// (got {url!r}): OAuth tokens and the API key typed on "
            "the connect page must travel over TLS. Put the server behind a TLS proxy and give its https URL."
        )
    return raw


def load_state_key(env: Mapping[str, str], key_file: Path | None = None) -> bytes:
    """INVOICE_MCP_STATE_KEY (the first key when several are listed), else the key file beside
    the SQLite database (made on first use, mode 0600; the state store's own). Replicas on one
    Postgres have no file to share: they must each be given INVOICE_MCP_STATE_KEY."""
    raw = env.get("INVOICE_MCP_STATE_KEY", "").split(",")[0].strip()
    if raw:
        try:
            Fernet(raw.encode())
        except ValueError:
            raise OAuthConfigError(
                "INVOICE_MCP_STATE_KEY must be a Fernet key (url-safe base64 of 32 random bytes). Generate one: "
                'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from None
        return raw.encode()
    if key_file is None:
        raise OAuthConfigError(
            "this state store has no folder for a key file: set INVOICE_MCP_STATE_KEY to the same Fernet key on "
            'every replica (python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
        )
    path = key_file
    if path.is_file():
        key = path.read_bytes().strip()
        try:
            Fernet(key)
        except ValueError:
            raise OAuthConfigError(f"the state key file {path} is not a Fernet key") from None
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


def _flag(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def load_oauth_config(
    env: Mapping[str, str] | None = None, *, public_url: str | None = None, key_file: Path | None = None
) -> OAuthConfig:
    e = os.environ if env is None else env
    allow_loopback = _flag(e.get("INVOICE_MCP_OAUTH_ALLOW_LOOPBACK", ""))
    url = public_url or e.get("INVOICE_MCP_PUBLIC_URL", "").strip()
    if not url:
        raise OAuthConfigError(
            "--auth oauth needs the public URL clients reach this server at: --public-url https://mcp.example.com "
            "or INVOICE_MCP_PUBLIC_URL (the origin of your TLS proxy; MCP is served at its /mcp)"
        )
    origin = check_public_url(url, allow_loopback=allow_loopback)
    ttl_raw = e.get("INVOICE_MCP_OAUTH_ACCESS_TTL_S", "").strip()
    access_ttl = DEFAULT_ACCESS_TTL_S
    if ttl_raw:
        if not ttl_raw.isdigit() or int(ttl_raw) < 1:
            raise OAuthConfigError(
                f"INVOICE_MCP_OAUTH_ACCESS_TTL_S must be a whole number of seconds (got {ttl_raw!r})"
            )
        access_ttl = int(ttl_raw)
    return OAuthConfig(
        public_url=origin,
        state_key=load_state_key(e, key_file),
        access_ttl_s=access_ttl,
        allow_loopback=allow_loopback,
    )
