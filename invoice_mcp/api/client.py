"""The one HTTP client of the process: tokens, pacing, retries, error mapping.

Nothing else in the package talks HTTP, and this module knows nothing of MCP.
Idempotent calls (GET, archive, restore) are retried on transient faults with
backoff; a create is re-sent only when it certainly never reached the API.

The loop around one attempt (attempts, a time budget, full-jitter back-off, an
injected sleep) is what a retry library would give; it stays a short loop here
because what matters is judging each attempt (`_attempt`, `_judge`), which no
library knows: an ambiguous create is never re-sent, and a 429 holds back every
caller of the shared limiter for as long as the API asked.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypedDict, TypeVar, Unpack
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
    RateLimitedError,
    UpstreamError,
    error_body,
    error_from_reply,
    retry_after,
)
from invoice_mcp.api.models import PAGE_SIZE, Customer, Invoice, Link, NewInvoice, Page, Payment
from invoice_mcp.api.ratelimit import GateFull, LocalRateLimiter, RateLimiter, StrangerGate
from invoice_mcp.api.settings import Settings
from invoice_mcp.api.stats import count as _count
from invoice_mcp.clock import ApiClock
from invoice_mcp.logs import RedactingFilter
from invoice_mcp.text import clean

log = logging.getLogger(__name__)

Model = TypeVar("Model", bound=BaseModel)

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS: Final = 4
MAX_BACKOFF_S: Final = 4.0
MAX_RETRY_AFTER_S: Final = 10.0
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""Largest response body the client reads (a page of 100 invoices is ~100 KB). Generous on
purpose: the parsed models are small whatever the body (every text field is cut to its
limit in api/models.py), so this only bounds the transient read and parse."""
MAX_TOKEN_CHARS: Final = 8192
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what can travel in a header


class ResponseTooLargeError(UpstreamError):
    """The API sent a body larger than MAX_BODY_BYTES; it was not read."""


@dataclass(frozen=True)
class Retry:
    """An attempt that failed in a way another attempt may cure: what to raise when none is
    left, and the wait the API asked for (None: the client's own back-off)."""

    failure: APIError
    wait: float | None = None


def check_id(value: str, what: str = "id") -> str:
    """An id is one path segment. Refuse what could change the path (dot segments)
    or that no API id looks like; everything else is percent-escaped."""
    if not value or value.strip(".") == "" or len(value) > 200 or any(ord(c) < 32 for c in value):
        raise InvalidRequestError(f"invalid {what}: {value[:40]!r}", validation_errors={what: "not a valid id"})
    return quote(value, safe="")


def _backoff(attempt: int) -> float:
    """Full jitter: uniform in [0, 0.25 s × 2^attempt], at most MAX_BACKOFF_S."""
    return random.uniform(0, min(MAX_BACKOFF_S, 0.25 * 2**attempt))


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


class PageParams(TypedDict, total=False):
    """What every list endpoint takes: a page size (PAGE_SIZE unless given) and a cursor."""

    limit: int
    after: str | None
    before: str | None


class InvoiceParams(PageParams, total=False):
    created_at_start: str | None
    created_at_end: str | None
    due_date_start: str | None
    due_date_end: str | None
    customer_id: str | None
    invoice_number: str | None
    status: str | None


class CustomerParams(PageParams, total=False):
    company_name: str | None


class PaymentParams(PageParams, total=False):
    type: str | None
    status: str | None
    customer_id: str | None
    invoice_id: str | None
    payment_method: str | None
    created_at_start: str | None
    created_at_end: str | None


def _query(params: Mapping[str, object]) -> dict[str, str]:
    """Query parameters: the ones given, as strings, with a page of PAGE_SIZE unless asked otherwise."""
    return {k: str(v) for k, v in {"limit": PAGE_SIZE, **params}.items() if v is not None}


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
        self.token_gate: StrangerGate | None = None
        """Set by a gateway for credentials not yet known good: their token requests pass this
        bounded gate before taking a slot on the key's schedule (api/ratelimit.py)."""
        self._transport = transport
        self._http_client: httpx.AsyncClient | None = None
        self._max_body = max_body_bytes
        secret = settings.client_secret.get_secret_value()
        self._basic = basic_auth(settings.client_id, secret)
        # What an API error must never echo back into a tool result: the same
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

        if self.token_gate is not None and not self.tokens.verified:
            try:
                await self.token_gate.acquire()
            except GateFull as exc:
                raise RateLimitedError(
                    "too many token requests with unverified credentials for this client id are waiting",
                    retry_after=exc.retry_after,
                    code="unverified_credentials",
                ) from None
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
            raise error_from_reply(resp, "token request", self.scrub)
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
            outcome = await self._attempt(send, what, idempotent=idempotent, parse=parse, retry=attempt > 1)
            if isinstance(outcome, httpx.Response):
                return outcome
            if attempt >= self._max_attempts:
                raise outcome.failure
            wait = outcome.wait if outcome.wait is not None else _backoff(attempt)
            if time.monotonic() + wait > deadline:
                raise outcome.failure
            log.debug("%s: retrying in %.2fs after %s", what, wait, type(outcome.failure).__name__)
            await self._sleep(wait)

    async def _attempt(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        what: str,
        *,
        idempotent: bool,
        parse: Callable[[httpx.Response], object] | None,
        retry: bool,
    ) -> httpx.Response | Retry:
        """One send, judged: the response to return, a failure worth another attempt, or a raise.
        A create whose outcome is unknown raises AmbiguousWriteError: it is never re-sent."""
        try:
            resp = await send()
        except ResponseTooLargeError as exc:
            _count(retry)
            if not idempotent:
                raise AmbiguousWriteError(f"{what}: {exc.message}") from None
            raise
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            _count(retry)  # never reached the API: safe to re-send, even a create
            return Retry(UpstreamError(f"{what}: cannot reach the API ({type(exc).__name__})"))
        except httpx.TransportError as exc:
            _count(retry)
            if not idempotent:
                raise AmbiguousWriteError(
                    f"{what}: the connection failed after the request was sent ({type(exc).__name__})"
                ) from exc
            return Retry(UpstreamError(f"{what}: the connection failed ({type(exc).__name__})"))
        _count(retry)
        return await self._judge(resp, what, idempotent=idempotent, parse=parse)

    async def _judge(
        self, resp: httpx.Response, what: str, *, idempotent: bool, parse: Callable[[httpx.Response], object] | None
    ) -> httpx.Response | Retry:
        """A response that arrived: final, or a failure worth another attempt. A 429 holds back
        every caller of this limiter (not only this one) for as long as the API asked."""
        status = resp.status_code
        if status == 429:
            wait = min(retry_after(resp) or 1.0, MAX_RETRY_AFTER_S)
            await self.limiter.penalize(wait)
            code = clean(error_body(resp).code, 60) or None
            return Retry(RateLimitedError(f"{what}: rate limited by the API", retry_after=wait, code=code), wait)
        if status in RETRY_STATUSES:
            if not idempotent:
                raise AmbiguousWriteError(f"{what}: the API answered {status} after receiving the request")
            return Retry(error_from_reply(resp, what, self.scrub))
        if 200 <= status < 300 and parse is not None:
            try:
                parse(resp)
            except (ValueError, PydanticValidationError):
                if not idempotent:
                    raise AmbiguousWriteError(f"{what}: the API's answer was unreadable") from None
                return Retry(UpstreamError(f"{what}: the API returned an unreadable response"))
        return resp

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, object] | None = None,
        idempotent: bool = True,
        model: type[Model],
    ) -> Model:
        parsed: list[Model] = []

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
            raise error_from_reply(resp, what, self.scrub)
        raise AssertionError("unreachable")

    # -- invoices -----------------------------------------------------------

    async def list_invoices(self, **params: Unpack[InvoiceParams]) -> Page[Invoice]:
        return await self._call("GET", "/invoices", "list invoices", params=_query(params), model=Page[Invoice])

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

    async def list_customers(self, **params: Unpack[CustomerParams]) -> Page[Customer]:
        return await self._call("GET", "/customers", "list customers", params=_query(params), model=Page[Customer])

    async def get_customer(self, customer_id: str) -> Customer:
        path = f"/customers/{check_id(customer_id, 'customer_id')}"
        return await self._call("GET", path, f"customer {customer_id}", model=Customer)

    # -- payments -----------------------------------------------------------

    async def list_payments(self, **params: Unpack[PaymentParams]) -> Page[Payment]:
        """One page of payments (newest first). `invoice_id` is only a filter: a Payment never says
        which invoice it paid, so attributing money to an invoice takes one walk per invoice."""
        return await self._call("GET", "/payments", "list payments", params=_query(params), model=Page[Payment])

    async def get_payment(self, payment_id: str) -> Payment:
        path = f"/payments/{check_id(payment_id, 'payment_id')}"
        return await self._call("GET", path, f"payment {payment_id}", model=Payment)
