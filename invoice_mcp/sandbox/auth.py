"""Client-credentials token issuing and bearer validation, plus the request rate limiter."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``Basic base64(id:secret)`` -> (id, secret); None if absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def auth_kind(header: str | None) -> str | None:
    """ "basic" / "bearer" / None, for the request log."""
    if not header:
        return None
    scheme = header.strip().partition(" ")[0].lower()
    return scheme if scheme in ("basic", "bearer") else None


class TokenStore:
    """Opaque 56-hex-char tokens that expire after ``ttl`` seconds of monotonic time."""

    def __init__(self, client_id: str, client_secret: str, ttl: float) -> None:
        self._id = client_id
        self._secret = client_secret
        self.ttl = ttl
        self._lock = threading.Lock()
        self._live: dict[str, float] = {}
        self._issued: list[str] = []

    def credentials_ok(self, creds: tuple[str, str] | None) -> bool:
        if creds is None:
            return False
        id_ok = hmac.compare_digest(creds[0].encode(), self._id.encode())
        secret_ok = hmac.compare_digest(creds[1].encode(), self._secret.encode())
        return id_ok and secret_ok

    def issue(self, now: float) -> str:
        token = secrets.token_hex(28)
        with self._lock:
            self._live[token] = now + self.ttl
            self._issued.append(token)
        return token

    def valid(self, token: str | None, now: float) -> bool:
        if token is None:
            return False
        with self._lock:
            expiry = self._live.get(token)
            if expiry is None:
                return False
            if now >= expiry:
                del self._live[token]
                return False
            return True

    def reset(self) -> None:
        with self._lock:
            self._live.clear()
            self._issued.clear()

    def expire_all(self) -> None:
        with self._lock:
            self._live.clear()

    @property
    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)


class TokenBucket:
    """Capacity = rate, refilled continuously at ``rate``/s, starting full.

    Requests spaced exactly ``1/rate`` apart always pass (a tiny epsilon absorbs float error);
    a burst gets ``rate`` requests through and then 429s.
    """

    _EPS = 1e-9

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate_limit must be positive or None")
        self.rate = rate
        self._lock = threading.Lock()
        self._tokens = rate
        self._last: float | None = None

    def take(self, now: float) -> bool:
        with self._lock:
            if self._last is not None and now > self._last:
                self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            if self._last is None or now > self._last:
                self._last = now
            if self._tokens >= 1.0 - self._EPS:
                self._tokens = max(0.0, self._tokens - 1.0)
                return True
            return False
