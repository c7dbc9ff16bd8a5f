"""Exceptions raised by the API client, and how an error reply becomes one.

Small on purpose: the MCP layer maps each class to one actionable message.
Messages never contain secrets (client secret, tokens) or links.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError as PydanticValidationError

from invoice_mcp.api.models import ErrorBody
from invoice_mcp.text import clean

if TYPE_CHECKING:  # the server imports these classes at start-up, which need not load httpx
    import httpx

MAX_ERROR_TEXT: Final = 300
MAX_VALIDATION_ERRORS: Final = 10
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class APIError(Exception):
    """An API call failed. Carries what the API said, minus anything secret."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        validation_errors: dict[str, str] | None = None,
        api_text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.validation_errors: dict[str, str] = dict(validation_errors or {})
        self.api_text = api_text
        """What the API itself wrote (cleaned, bounded, secrets masked): data, to be quoted
        wherever it reaches a model; `message` is this server's own words around it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class CredentialsError(APIError):
    """The token endpoint refused the client id/secret (403), or tokens keep being rejected (401)."""


class NotFoundError(APIError):
    """404: no such object in this environment."""


class InvalidRequestError(APIError):
    """400/422: the API rejected the input; `validation_errors` maps field → problem."""


class RateLimitedError(APIError):
    """429 persisted through every retry."""

    def __init__(self, message: str, *, retry_after: float, **kw: object) -> None:
        super().__init__(message, status=429, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UpstreamError(APIError):
    """5xx, a dropped connection, a timeout or an unreadable body that retries did not cure."""


class SharedStateError(UpstreamError, RuntimeError):
    """Redis (INVOICE_MCP_REDIS_URL) could not be used; the message shows no password.

    An `UpstreamError`, so Redis going away mid-session reaches the model as the
    same clear "failing right now, retry" error as an unreachable API."""


class AmbiguousWriteError(APIError):
    """A create may have reached the API before failing: it must not be re-sent blindly."""


Scrub = Callable[[str], str]


def retry_after(resp: httpx.Response) -> float | None:
    """The reply's `Retry-After` in seconds (0 to an hour), or None when absent or unusable."""
    raw = resp.headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return min(max(0.0, value), 3600.0)


def error_body(resp: httpx.Response) -> ErrorBody:
    """The error reply as the API meant it: JSON when it is JSON, else the page's text (raw, to be cleaned)."""
    try:
        return ErrorBody.model_validate_json(resp.content)
    except (PydanticValidationError, ValueError):
        pass
    text = resp.content[:65536].decode("utf-8", "replace")
    if "html" in resp.headers.get("content-type", "").lower() or text.lstrip()[:1] == "<":
        m = _TITLE.search(text)
        title = clean(m.group(1), 80) if m else ""
        return ErrorBody(message=f"an HTML error page titled {title}" if title else "an HTML error page")
    return ErrorBody(message=text or None)


def _api_text(raw: str | None, scrub: Scrub, max_len: int = MAX_ERROR_TEXT) -> str | None:
    """Text the API wrote, for an error message: secrets masked, cleaned (one line, no control,
    bidi or invisible characters), bounded. Marking it as data is the renderer's job."""
    if not raw:
        return None
    return clean(scrub(raw), max_len) or None


def error_from_reply(resp: httpx.Response, what: str, scrub: Scrub = lambda t: t) -> APIError:
    """The exception for an error reply, chosen by status, carrying what the API said (scrubbed)."""
    body = error_body(resp)
    status = resp.status_code
    msg = _api_text(body.message, scrub) or clean(resp.reason_phrase, 60) or f"HTTP {status}"
    code = (clean(scrub(body.code), 60) or None) if body.code else None
    problems: dict[str, str] = {}
    items = list((body.validation_errors or {}).items())
    for key, value in items[:MAX_VALIDATION_ERRORS]:
        problems[clean(scrub(key), 60) or "field"] = _api_text(value, scrub, 200) or "invalid"
    if len(items) > MAX_VALIDATION_ERRORS:
        problems["…"] = f"and {len(items) - MAX_VALIDATION_ERRORS} more problems"
    kw: dict[str, Any] = {"status": status, "code": code, "validation_errors": problems, "api_text": msg}
    if status == 404:
        return NotFoundError(f"{what}: not found", **kw)
    if status in (400, 422):
        return InvalidRequestError(msg, **kw)
    if status in (401, 403):
        return CredentialsError(msg, **kw)
    if status == 429:
        return RateLimitedError(msg, retry_after=retry_after(resp) or 1.0, code=code)
    return UpstreamError(f"{what}: upstream error {status}: {msg}", **kw)
