"""Exceptions raised by the API client.

Small on purpose: the MCP layer maps each class to one actionable message.
Messages never contain secrets (client secret, tokens) or links.
"""

from __future__ import annotations


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
