"""Keys derived from API credentials: one place, one derivation.

* ``secret_digest``: names a client secret in cache keys (token cache, tenant
  registry) without holding it; a different secret is a different key, so a
  wrong secret never rides on a token minted with the right one.
* ``derive_key``: a 32-byte key for one purpose (list cursors, elicitation
  request state), the same on every replica that holds the same credentials and
  unrelated between purposes and between accounts.
"""

from __future__ import annotations

import hashlib
import hmac

_DIGEST_LABEL = b"invoice-mcp/secret-digest/v1|"


def secret_digest(secret: str) -> str:
    """A short, stable, one-way name for a client secret (hex)."""
    return hashlib.sha256(_DIGEST_LABEL + secret.encode()).hexdigest()[:32]


def derive_key(secret: str, purpose: str, *context: str) -> bytes:
    """HMAC-SHA256 keyed by `secret` over the purpose and its context (base URL, client id...)."""
    message = "|".join(("invoice-mcp", purpose, "v1", *context)).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()
