"""The one HTTP client of the process: tokens, pacing, retries, error mapping.

Nothing else in the package talks HTTP, and this module knows nothing of MCP.
Idempotent calls (GET, archive, restore) are retried on transient faults with
backoff; a create is re-sent only when it certainly never reached the API.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import quote

import anyio
import httpx
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from invoice_mcp import __version__
from invoice_mcp.api.auth import TokenProvider, TokenStore, basic_auth
from invoice_mcp.api.errors import (
    AmbiguousWriteError,
    APIError,
    CredentialsError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    UpstreamError,
)
from invoice_mcp.api.models import PAGE_SIZE, Customer, ErrorBody, Invoice, Link, NewInvoice, Page, Payment
from invoice_mcp.api.ratelimit import LocalRateLimiter, RateLimiter
from invoice_mcp.api.settings import Settings
from invoice_mcp.api.stats import count as _count
from invoice_mcp.clock import ApiClock
from invoice_mcp.logs import RedactingFilter
from invoice_mcp.text import clean

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS: Final = 4
MAX_BACKOFF_S: Final = 4.0
MAX_RETRY_AFTER_S: Final = 10.0
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""Largest response body the client reads (a page of 100 invoices is ~100 KB). Generous on
purpose: the parsed models are small whatever the body (every text field is cut to its
limit in api/models.py), so this only bounds the transient read and parse."""
MAX_TOKEN_CHARS: Final = 8192
MAX_ERROR_TEXT: Final = 300
MAX_VALIDATION_ERRORS: Final = 10
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what can travel in a header
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class ResponseTooLargeError(UpstreamError):
    """The API sent a body larger than MAX_BODY_BYTES; it was not read."""


def check_id(value: str, what: str = "id") -> str:
    """An id is one path segment. Refuse what could change the path (dot segments)
    or that no API id looks like; everything else is percent-escaped."""
    if not value or value.strip(".") == "" or len(value) > 200 or any(ord(c) < 32 for c in value):
        raise InvalidRequestError(f"invalid {what}: {value[:40]!r}", validation_errors={what: "not a valid id"})
    return quote(value, safe="")


def _retry_after(resp: httpx.Response) -> float | None:
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


Scrub = Callable[[str], str]


def _error_body(resp: httpx.Response) -> ErrorBody:
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


def _map_error(resp: httpx.Response, what: str, scrub: Scrub = lambda t: t) -> APIError:
    body = _error_body(resp)
    status = resp.status_code
    msg = _api_text(body.message, scrub) or clean(resp.reason_phrase, 60) or f"HTTP {status}"
    code = (clean(scrub(body.code), 60) or None) if body.code else None
    problems: dict[str, str] = {}
    items = list((body.validation_errors or {}).items())
    for key, value in items[:MAX_VALIDATION_ERRORS]:
        problems[clean(scrub(key), 60) or "field"] = _api_text(value, scrub, 200) or "invalid"
    if len(items) > MAX_VALIDATION_ERRORS:
        problems["…"] = f"and {len(items) - MAX_VALIDATION_ERRORS} more problems"
    kw: dict[str, Any] = {"status": status, "code": code, "validation_errors": problems}
    if status == 404:
        return NotFoundError(f"{what}: not found", **kw)
    if status in (400, 422):
        return InvalidRequestError(msg, **kw)
    if status in (401, 403):
        return CredentialsError(msg, **kw)
    if status == 429:
        return RateLimitedError(msg, retry_after=_retry_after(resp) or 1.0, code=code)
    return UpstreamError(f"{what}: upstream error {status}: {msg}", **kw)


def token_lifetime(raw: object) -> float:
    """`expires_in` as seconds to trust the token for. The API says 3600; anything unusable
    (NaN, Infinity, 400 digits, text, negative) is read as a conservative 5 minutes (a 401
    before then re-mints anyway), and an absurdly long one is capped at a day."""
    try:
        value = float(raw) if isinstance(raw, int | float | str) and not isinstance(raw, bool) else math.nan
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        log.warning("token endpoint sent an unusable expires_in; caching the token for 300 s")
        return 300.0
    return min(value, 86400.0)


def absolute_https(url: str) -> str:
    """The API returns payment links without a scheme (`pay.brand.com/x`)."""
    url = url.strip()
    if url.startswith("//"):
        return "https:" + url
    if "://" not in url:
        return "https://" + url
    return url


def _query(**values: str | int | None) -> dict[str, str]:
    """Query parameters: the ones given, as strings."""
    return {k: str(v) for k, v in values.items() if v is not None}


class APIClient:
    """Async client for the Alternative Payments API. One per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
        token_store: TokenStore | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        max_attempts: int = MAX_ATTEMPTS,
        retry_budget_s: float | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: ApiClock | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or ApiClock()
        """The API's time, learnt from every response's `Date` header."""
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._budget = retry_budget_s if retry_budget_s is not None else max(20.0, settings.timeout_s * 2)
        self.limiter: RateLimiter = limiter or LocalRateLimiter(settings.rate_limit)
        self._transport = transport
        self._http_client: httpx.AsyncClient | None = None
        self._max_body = max_body_bytes
        secret = settings.client_secret.get_secret_value()
        self._basic = basic_auth(settings.client_id, secret)
        # What an API error must never echo back into a tool result (issue 12 §4): the same
        # masking as the logs, plus this client's own secrets and the tokens it minted.
        self._redactor = RedactingFilter(
            [secret, self._basic, self._basic.removeprefix("Basic "), f"{settings.client_id}:{secret}"]
        )
        self.tokens = TokenProvider(
            settings.cache_key, self._mint_token, token_store, mint_lock=getattr(token_store, "mint_lock", None)
        )

    @property
    def _http(self) -> httpx.AsyncClient:
        """Created on first use: loading TLS certificates costs ~30 ms that
        start-up (answering tools/list) should not pay."""
        if self._http_client is None:
            s = self.settings
            self._http_client = httpx.AsyncClient(
                base_url=s.base_url,
                timeout=httpx.Timeout(s.timeout_s, connect=min(5.0, s.timeout_s)),
                transport=self._transport,
                headers={"User-Agent": f"invoice-mcp/{__version__}", "Accept": "application/json"},
                limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
                follow_redirects=False,
            )
        return self._http_client

    async def aclose(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()

    async def __aenter__(self) -> APIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def scrub(self, text: str) -> str:
        """`text` with every secret this client knows masked (and bearer/basic values, token fields)."""
        return self._redactor.redact(text, urls=False)

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; the body is read up to `max_body_bytes` (ResponseTooLargeError beyond)."""
        request = self._http.build_request(method, path, **kw)
        resp = await self._http.send(request, stream=True)
        try:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_body:
                raise self._too_large(request)
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():  # decoded: a gzip bomb counts at its real size
                size += len(chunk)
                if size > self._max_body:
                    raise self._too_large(request)
                chunks.append(chunk)
        finally:
            await resp.aclose()
        self.clock.observe(resp.headers.get("date"))
        headers = [
            (k, v) for k, v in resp.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")
        ]
        return httpx.Response(
            resp.status_code, headers=headers, content=b"".join(chunks), request=request, extensions=resp.extensions
        )

    def _too_large(self, request: httpx.Request) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{request.method} {request.url.path}: the API's response is larger than "
            f"{self._max_body // (1024 * 1024)} MB; not read. Narrow the request (smaller limit, filters)"
        )

    # -- tokens -------------------------------------------------------------

    async def sync_clock(self) -> None:
        """Learn the API's time before an answer depends on "today" (the token request that
        does it is needed by the call anyway). A token shared by another process through Redis
        sends nothing: the local clock stands in until the first response."""
        if not self.clock.synced:
            await self.tokens.get()

    async def _mint_token(self) -> tuple[str, float]:
        async def send() -> httpx.Response:
            return await self._send(
                "POST",
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": self._basic},
            )

        resp = await self._with_retries(send, "token request", idempotent=True)
        if resp.status_code == 403:
            raise CredentialsError(
                "the API refused the client credentials (403 Invalid credentials): "
                "check AP_CLIENT_ID and AP_CLIENT_SECRET, and that AP_ENVIRONMENT "
                f"matches the key (now {self.settings.environment})",
                status=403,
                code="forbidden",
            )
        if resp.status_code != 200:
            raise _map_error(resp, "token request", self.scrub)
        try:
            body = json.loads(resp.content)
            token = body["access_token"]
            token_type = str(body.get("token_type", "bearer"))
            raw_expiry = body.get("expires_in", 3600)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise UpstreamError("token endpoint returned an unreadable response") from None
        if not isinstance(token, str) or not token or token_type.lower() != "bearer":
            raise UpstreamError("token endpoint returned no bearer token")
        if len(token) > MAX_TOKEN_CHARS or not _TOKEN_CHARS.fullmatch(token):
            # Not sendable in an Authorization header (non-ASCII, spaces, control characters).
            raise UpstreamError(
                "token endpoint returned a malformed access token (not visible ASCII, or over 8 KB); "
                "it cannot be used. Check AP_BASE_URL / AP_ENVIRONMENT point at the real API"
            )
        self._redactor.add_secret(token)
        return token, token_lifetime(raw_expiry)

    # -- core request loop --------------------------------------------------

    async def _with_retries(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        what: str,
        *,
        idempotent: bool,
        parse: Callable[[httpx.Response], object] | None = None,
    ) -> httpx.Response:
        """Send with pacing and retries. Returns the final response (any status);
        raises UpstreamError / AmbiguousWriteError / RateLimitedError when retries run out."""
        deadline = time.monotonic() + self._budget
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            retry_wait: float | None = None
            try:
                resp = await send()
            except ResponseTooLargeError as exc:
                _count(attempt > 1)
                if not idempotent:
                    raise AmbiguousWriteError(f"{what}: {exc.message}") from None
                raise
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Never reached the API: safe to re-send, even a create.
                _count(attempt > 1)
                failure: APIError = UpstreamError(f"{what}: cannot reach the API ({type(exc).__name__})")
            except httpx.TransportError as exc:
                _count(attempt > 1)
                if not idempotent:
                    raise AmbiguousWriteError(
                        f"{what}: the connection failed after the request was sent ({type(exc).__name__})"
                    ) from exc
                failure = UpstreamError(f"{what}: the connection failed ({type(exc).__name__})")
            else:
                _count(attempt > 1)
                status = resp.status_code
                if status == 429:
                    retry_wait = min(_retry_after(resp) or 1.0, MAX_RETRY_AFTER_S)
                    await self.limiter.penalize(retry_wait)
                    failure = RateLimitedError(
                        f"{what}: rate limited by the API",
                        retry_after=retry_wait,
                        code=clean(_error_body(resp).code, 60) or None,
                    )
                elif status in RETRY_STATUSES:
                    if not idempotent:
                        raise AmbiguousWriteError(f"{what}: the API answered {status} after receiving the request")
                    failure = _map_error(resp, what, self.scrub)
                elif 200 <= status < 300 and parse is not None:
                    try:
                        parse(resp)
                        return resp
                    except (ValueError, PydanticValidationError):
                        if not idempotent:
                            raise AmbiguousWriteError(f"{what}: the API's answer was unreadable") from None
                        failure = UpstreamError(f"{what}: the API returned an unreadable response")
                else:
                    return resp
            if attempt >= self._max_attempts:
                raise failure
            wait = retry_wait if retry_wait is not None else random.uniform(0, min(MAX_BACKOFF_S, 0.25 * 2**attempt))
            if time.monotonic() + wait > deadline:
                raise failure
            log.debug("%s: retrying in %.2fs after %s", what, wait, type(failure).__name__)
            await self._sleep(wait)

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, object] | None = None,
        idempotent: bool = True,
        model: type[M],
    ) -> M:
        parsed: list[M] = []

        def parse(resp: httpx.Response) -> object:
            parsed.clear()
            parsed.append(model.model_validate_json(resp.content))
            return None

        for auth_attempt in range(2):
            token = await self.tokens.get()

            async def send(token: str = token) -> httpx.Response:
                return await self._send(
                    method, path, params=params, json=body, headers={"Authorization": f"Bearer {token}"}
                )

            started = time.monotonic()
            resp = await self._with_retries(send, what, idempotent=idempotent, parse=parse)
            log.debug(
                "%s %s -> %s in %.0fms",
                method,
                path.split("?")[0],
                resp.status_code,
                (time.monotonic() - started) * 1000,
            )
            if resp.status_code == 401:
                # Expired or revoked: forget it, mint once, retry once. The request was
                # rejected before processing, so even a create is safe to re-send.
                await self.tokens.invalidate(token)
                if auth_attempt == 0:
                    continue
                raise CredentialsError(
                    "the API rejected a freshly minted access token (401); check that the API key "
                    "in AP_CLIENT_ID/AP_CLIENT_SECRET is active and has access to invoices",
                    status=401,
                )
            if 200 <= resp.status_code < 300:
                return parsed[0]
            raise _map_error(resp, what, self.scrub)
        raise AssertionError("unreachable")

    # -- invoices -----------------------------------------------------------

    async def list_invoices(
        self,
        *,
        limit: int = PAGE_SIZE,
        after: str | None = None,
        before: str | None = None,
        created_at_start: str | None = None,
        created_at_end: str | None = None,
        due_date_start: str | None = None,
        due_date_end: str | None = None,
        customer_id: str | None = None,
        invoice_number: str | None = None,
        status: str | None = None,
    ) -> Page[Invoice]:
        params = _query(
            limit=limit,
            after=after,
            before=before,
            created_at_start=created_at_start,
            created_at_end=created_at_end,
            due_date_start=due_date_start,
            due_date_end=due_date_end,
            customer_id=customer_id,
            invoice_number=invoice_number,
            status=status,
        )
        return await self._call("GET", "/invoices", "list invoices", params=params, model=Page[Invoice])

    async def create_invoice(self, new: NewInvoice) -> Invoice:
        return await self._call(
            "POST", "/invoices", "create invoice", body=new.to_json(), idempotent=False, model=Invoice
        )

    async def get_invoice(self, invoice_id: str) -> Invoice:
        path = f"/invoices/{check_id(invoice_id, 'invoice_id')}"
        return await self._call("GET", path, f"invoice {invoice_id}", model=Invoice)

    async def archive_invoice(self, invoice_id: str) -> Invoice:
        path = f"/invoices/{check_id(invoice_id, 'invoice_id')}"
        return await self._call("DELETE", path, f"invoice {invoice_id}", model=Invoice)

    async def restore_invoice(self, invoice_id: str) -> Invoice:
        path = f"/invoices/{check_id(invoice_id, 'invoice_id')}/restore"
        return await self._call("POST", path, f"invoice {invoice_id}", model=Invoice)

    async def get_payment_link(self, invoice_id: str) -> Link:
        return await self._link(invoice_id, "payment-link")

    async def get_pdf_link(self, invoice_id: str) -> Link:
        return await self._link(invoice_id, "pdf-link")

    async def _link(self, invoice_id: str, kind: str) -> Link:
        path = f"/invoices/{check_id(invoice_id, 'invoice_id')}/{kind}"
        link = await self._call("GET", path, f"invoice {invoice_id}", model=Link)
        if link.url:
            link.url = absolute_https(link.url)
        return link

    # -- customers ----------------------------------------------------------

    async def list_customers(
        self,
        *,
        company_name: str | None = None,
        limit: int = PAGE_SIZE,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Customer]:
        params = _query(limit=limit, company_name=company_name, after=after, before=before)
        return await self._call("GET", "/customers", "list customers", params=params, model=Page[Customer])

    async def get_customer(self, customer_id: str) -> Customer:
        path = f"/customers/{check_id(customer_id, 'customer_id')}"
        return await self._call("GET", path, f"customer {customer_id}", model=Customer)

    # -- payments -----------------------------------------------------------

    async def list_payments(
        self,
        *,
        limit: int = PAGE_SIZE,
        after: str | None = None,
        before: str | None = None,
        type: str | None = None,
        status: str | None = None,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        payment_method: str | None = None,
        created_at_start: str | None = None,
        created_at_end: str | None = None,
    ) -> Page[Payment]:
        """One page of payments (newest first). `invoice_id` is only a filter: a Payment never says
        which invoice it paid, so attributing money to an invoice takes one walk per invoice."""
        params = _query(
            limit=limit,
            after=after,
            before=before,
            type=type,
            status=status,
            customer_id=customer_id,
            invoice_id=invoice_id,
            payment_method=payment_method,
            created_at_start=created_at_start,
            created_at_end=created_at_end,
        )
        return await self._call("GET", "/payments", "list payments", params=params, model=Page[Payment])

    async def get_payment(self, payment_id: str) -> Payment:
        path = f"/payments/{check_id(payment_id, 'payment_id')}"
        return await self._call("GET", path, f"payment {payment_id}", model=Payment)
