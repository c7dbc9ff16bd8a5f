"""The ASGI application simulating the Alternative Payments REST API.

It is a plain ASGI callable rather than a framework router because routing must work on the raw
path: the path is split on ``/`` *before* percent-decoding each segment, so ``/invoices/a%2Fb``
addresses the single id ``a/b``. Request order of concerns: log arrival -> injected faults ->
rate limit -> route (404/405) -> bearer auth -> handler.

Several tenants (credential pairs) can be served; each has its own data, tokens and rate-limit
bucket. A request is attributed to the tenant whose client id it presents (Basic) or whose token
it carries; requests attributable to no tenant share one anonymous bucket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, quote, unquote

from starlette.types import Receive, Scope, Send

from .auth import TokenBucket, auth_kind, parse_basic, parse_bearer
from .config import Clock, SandboxConfig
from .faults import FaultRule, Faults
from .log import RequestLog, RequestRecord
from .paging import CursorError, Key, Page, decode_cursor, encode_cursor
from .records import KNOWN_STATUSES, PAYMENT_METHODS, PAYMENT_STATUSES, PAYMENT_TYPES
from .store import CustomerQuery, InvoiceQuery, NewLine, PaymentQuery, Store
from .tenants import Tenant, Tenants

logger = logging.getLogger(__name__)

TRANSPORT_EXTENSION = "invoice_mcp.sandbox.transport"
"""Scope extension under which the runner exposes the connection's transport (for drops)."""

INVOICE_CURSOR = b"I"
CUSTOMER_CURSOR = b"C"
PAYMENT_CURSOR = b"P"
MAX_LIMIT = 100
_MALFORMED_BODY = b'{"data":[{"id":"inv_8dK2LmQ4","status":"op'
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT = re.compile(r"-?\d+")
_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
_ERROR_MESSAGES = {
    400: "Bad Request",
    401: "missing or expired access token",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Exception",
    429: "too many requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def json_reply(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    hdrs = [(b"content-type", b"application/json")]
    hdrs += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return Reply(status, body, hdrs)


def error_reply(
    status: int,
    code: str | None = None,
    message: str | None = None,
    validation_errors: dict[str, str] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Reply:
    """The documented ``HttpError`` shape: ``{code, message, validation_errors}``."""
    return json_reply(
        status,
        {
            "code": code or _ERROR_CODES.get(status, "error"),
            "message": message or _ERROR_MESSAGES.get(status, "error"),
            "validation_errors": validation_errors or {},
        },
        headers,
    )


@dataclass
class Ctx:
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    t: float
    tenant: Tenant | None = None
    """Who the credentials presented claim to be (not yet verified)."""

    @property
    def store(self) -> Store:
        """The data of the authenticated tenant (handlers behind bearer auth only)."""
        assert self.tenant is not None
        return self.tenant.store


Handler = Callable[[Ctx, list[str]], Reply]


def _parse_rfc3339(value: str) -> float | None:
    if not _RFC3339.fullmatch(value):
        return None
    text = value.upper().replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:  # fromisoformat wants at most 6 fractional digits
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = main + "." + digits.group(0)[:6].ljust(6, "0") + rest[digits.end() :]
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class _QueryParser:
    """Collects every query problem into ``validation_errors`` (one 400 for all of them)."""

    def __init__(self, query: dict[str, str]) -> None:
        self.q = query
        self.errors: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        value = self.q.get(name)
        return value if value else None  # empty means absent ("leave empty on the first page")

    def limit(self) -> int:
        raw = self.get("limit")
        if raw is None:
            return MAX_LIMIT
        if not _INT.fullmatch(raw) or int(raw) < 1:
            self.errors["limit"] = "must be an integer >= 1"
            return MAX_LIMIT
        return min(int(raw), MAX_LIMIT)

    def datetime(self, name: str) -> float | None:
        raw = self.get(name)
        if raw is None:
            return None
        ts = _parse_rfc3339(raw)
        if ts is None:
            self.errors[name] = "must be an RFC3339 date-time, e.g. 2026-01-01T00:00:00Z"
        return ts

    def cursor(self, name: str, kind: bytes) -> Key | None:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            return decode_cursor(kind, raw)
        except CursorError:
            self.errors[name] = "invalid cursor"
            return None

    def cursors(self, kind: bytes) -> tuple[Key | None, Key | None]:
        after, before = self.cursor("after", kind), self.cursor("before", kind)
        if after is not None and before is not None:
            self.errors["before"] = "cannot be combined with after"
        return after, before

    def page(self, kind: bytes) -> dict[str, Any]:
        """The parameters every list takes (`PageQuery`'s fields): limit, cursors, created_at window."""
        after, before = self.cursors(kind)
        return {
            "limit": self.limit(),
            "after": after,
            "before": before,
            "created_start": self.datetime("created_at_start"),
            "created_end": self.datetime("created_at_end"),
        }

    def choice(self, name: str, allowed: frozenset[str]) -> str | None:
        value = self.get(name)
        if value is not None and value not in allowed:
            self.errors[name] = "must be one of " + ", ".join(sorted(allowed))
        return value

    def fail(self) -> Reply:
        return error_reply(400, "bad_request", "invalid query parameters", self.errors)


def _found(record: dict[str, Any] | None, what: str) -> Reply:
    """The record as JSON, or the API's 404 for `what`."""
    return json_reply(200, record) if record else error_reply(404, "not_found", f"{what} not found")


def _envelope(page: Page[Any], kind: bytes) -> Reply:
    items = page.items
    return json_reply(
        200,
        {
            "data": [item.to_json() for item in items],
            "start_cursor": encode_cursor(kind, items[0].key) if items else "",
            "end_cursor": encode_cursor(kind, items[-1].key) if items else "",
            "has_next_page": page.has_next_page,
            "has_previous_page": page.has_previous_page,
        },
    )


def _is_number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class SandboxApp:
    """ASGI callable plus the state it serves; ``reset`` swaps in freshly generated data."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.ticker = config.ticker or time.monotonic
        self.log = RequestLog()
        self.tenants = Tenants(config)
        self.faults = Faults(self.tenants)
        self.reset()
        # (segments with None for an id, handlers by method, needs a bearer token)
        self._routes: list[tuple[tuple[str | None, ...], dict[str, Handler], bool]] = [
            (("oauth", "token"), {"POST": self._token}, False),
            (("invoices",), {"GET": self._list_invoices, "POST": self._create_invoice}, True),
            (("invoices", None), {"GET": self._get_invoice, "DELETE": self._archive}, True),
            (("invoices", None, "restore"), {"POST": self._restore}, True),
            (("invoices", None, "payment-link"), {"GET": self._payment_link}, True),
            (("invoices", None, "pdf-link"), {"GET": self._pdf_link}, True),
            (("customers",), {"GET": self._list_customers}, True),
            (("customers", None), {"GET": self._get_customer}, True),
            (("payments",), {"GET": self._list_payments}, True),
            (("payments", None), {"GET": self._get_payment}, True),
        ]

    def reset(self) -> None:
        cfg = self.config
        self.clock = Clock(cfg.today)
        self.tenants.reset(self.clock)
        self.anonymous_bucket = TokenBucket(cfg.rate_limit) if cfg.rate_limit is not None else None
        self.faults.clear()
        self.log.clear()

    @property
    def store(self) -> Store:
        """The default tenant's data."""
        return self.tenants.default.store

    def tenant_of(self, authz: str | None) -> Tenant | None:
        """The tenant a request is for: a known Basic client id, else the bearer token's owner."""
        creds = parse_basic(authz)
        if creds is not None:
            return self.tenants.get(creds[0])
        return self.tenants.owner(parse_bearer(authz))

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        t = self.ticker()
        method = str(scope["method"]).upper()
        path = str(scope["path"])
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(path)
        raw_query = bytes(scope.get("query_string", b"")).decode("latin-1")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        authz = headers.get("authorization")
        tenant = self.tenant_of(authz)
        seq = self.log.arrive(method, path)
        reply: Reply | None = None  # None: drop the connection
        body = b""
        try:
            received = await self._read_body(receive)
            if received is not None:
                body = received
                reply = await self._respond(Ctx(method, query, headers, body, t, tenant), path, raw_path)
        finally:
            # Logged *before* the client can see the outcome, so a test that has its response
            # (or its transport error) in hand always finds the record.
            self.log.add(
                seq,
                RequestRecord(
                    t=t,
                    method=method,
                    path=path,
                    raw_path=raw_path,
                    query=query,
                    raw_query=raw_query,
                    status=reply.status if reply is not None else 0,
                    auth=auth_kind(authz),
                    token=parse_bearer(authz),
                    body=body,
                    tenant=tenant.client_id if tenant is not None else None,
                ),
            )
        if reply is None:
            await self._drop(scope, receive, send)
        else:
            await self._send(send, reply)

    @staticmethod
    async def _read_body(receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _respond(self, ctx: Ctx, path: str, raw_path: str) -> Reply | None:
        """The outcome of one request: injected fault first, then the simulated API."""
        rule: FaultRule | None = self.faults.take(ctx.method, path)
        if rule is not None and rule.kind == "delay":
            await asyncio.sleep(rule.seconds)
            rule = None
        if rule is not None and rule.hold is not None:
            await rule.hold.wait()
            rule = None
        if rule is not None and rule.kind == "fail":
            reply = json_reply(rule.status, rule.body) if rule.body is not None else error_reply(rule.status)
            if rule.retry_after is not None:
                reply.headers.append((b"retry-after", rule.retry_after.encode("latin-1")))
            return reply
        if rule is not None and rule.kind == "malformed":
            return Reply(200, _MALFORMED_BODY, [(b"content-type", b"application/json")])
        if rule is not None and rule.kind == "drop" and not rule.after_processing:
            return None
        reply = self._handle(ctx, raw_path)
        if rule is not None and rule.kind == "drop":
            return None  # processed (e.g. the invoice exists), but the client never hears back
        return reply

    async def _send(self, send: Send, reply: Reply) -> None:
        headers = [
            *reply.headers,
            (b"content-length", str(len(reply.body)).encode()),
            (b"date", self.clock.http_date().encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body, "more_body": False})

    @staticmethod
    async def _drop(scope: Scope, receive: Receive, send: Send) -> None:
        """Abort the TCP connection without writing a response.

        The runner puts the transport into the scope. After aborting we wait for the server to
        notice the disconnect, so it does not try to answer on our behalf. Under another server
        we fall back to promising a body we never finish, which the client also sees as a
        protocol error (never as an HTTP status it could act on).
        """
        transport = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
        if isinstance(transport, asyncio.Transport):
            transport.abort()
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await send(  # pragma: no cover - only without the sandbox runner
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})  # pragma: no cover

    # -- dispatch ----------------------------------------------------------------------------------

    def _handle(self, ctx: Ctx, raw_path: str) -> Reply:
        try:
            bucket = ctx.tenant.bucket if ctx.tenant is not None else self.anonymous_bucket
            if bucket is not None and not bucket.take(ctx.t):
                return error_reply(429, "rate_limited", "too many requests", headers=[("Retry-After", "1")])
            segments = [unquote(s) for s in raw_path.split("?", 1)[0].split("/")[1:]]
            for pattern, methods, needs_token in self._routes:
                if len(pattern) != len(segments):
                    continue
                if any(p is not None and p != s for p, s in zip(pattern, segments, strict=True)):
                    continue
                handler = methods.get(ctx.method)
                if handler is None:
                    allow = ", ".join(sorted(methods))
                    return error_reply(405, "method_not_allowed", "method not allowed", headers=[("Allow", allow)])
                params = [s for p, s in zip(pattern, segments, strict=True) if p is None]
                if needs_token and not self._bearer_ok(ctx):
                    return error_reply(
                        401,
                        "unauthorized",
                        "missing or expired access token",
                        headers=[("WWW-Authenticate", "Bearer")],
                    )
                return handler(ctx, params)
            return error_reply(404, "not_found", "route not found")
        except Exception:
            logger.exception("sandbox handler failed")
            return error_reply(500, "internal_error", "Internal Server Error")

    def _bearer_ok(self, ctx: Ctx) -> bool:
        """A live token, minted for the tenant the request was attributed to."""
        token = parse_bearer(ctx.headers.get("authorization"))
        owner = self.tenants.owner(token)
        return owner is not None and owner is ctx.tenant and owner.tokens.valid(token, ctx.t)

    # -- handlers ----------------------------------------------------------------------------------

    def _token(self, ctx: Ctx, _params: list[str]) -> Reply:
        tenant = self.tenants.authenticate(parse_basic(ctx.headers.get("authorization")))
        if tenant is None:
            return error_reply(403, "forbidden", "Invalid credentials")
        ctype = ctx.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("", "application/x-www-form-urlencoded"):
            return error_reply(
                400, "bad_request", "body must be application/x-www-form-urlencoded", {"grant_type": "required"}
            )
        form = dict(parse_qsl(ctx.body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return error_reply(
                400, "bad_request", "unsupported grant_type", {"grant_type": "must be client_credentials"}
            )
        token = self.tenants.issue(tenant, ctx.t)
        return json_reply(
            200,
            {"access_token": token, "expires_in": int(tenant.tokens.ttl), "token_type": "bearer"},
            headers=[("Cache-Control", "no-store")],
        )

    def _list_invoices(self, ctx: Ctx, _params: list[str]) -> Reply:
        p = _QueryParser(ctx.query)
        q = InvoiceQuery(
            **p.page(INVOICE_CURSOR),
            due_start=p.datetime("due_date_start"),
            due_end=p.datetime("due_date_end"),
            customer_id=p.get("customer_id"),
            invoice_number=p.get("invoice_number"),
            status=p.choice("status", KNOWN_STATUSES),
        )
        return p.fail() if p.errors else _envelope(ctx.store.list_invoices(q), INVOICE_CURSOR)

    def _list_customers(self, ctx: Ctx, _params: list[str]) -> Reply:
        p = _QueryParser(ctx.query)
        q = CustomerQuery(**p.page(CUSTOMER_CURSOR), company_name=p.get("company_name"))
        return p.fail() if p.errors else _envelope(ctx.store.list_customers(q), CUSTOMER_CURSOR)

    def _list_payments(self, ctx: Ctx, _params: list[str]) -> Reply:
        p = _QueryParser(ctx.query)
        q = PaymentQuery(
            **p.page(PAYMENT_CURSOR),
            customer_id=p.get("customer_id"),
            invoice_id=p.get("invoice_id"),
            status=p.choice("status", PAYMENT_STATUSES),
            type=p.choice("type", PAYMENT_TYPES),
            payment_method=p.choice("payment_method", PAYMENT_METHODS),
        )
        return p.fail() if p.errors else _envelope(ctx.store.list_payments(q), PAYMENT_CURSOR)

    def _get_payment(self, ctx: Ctx, params: list[str]) -> Reply:
        return _found(ctx.store.payment_json(params[0]), "payment")

    def _get_customer(self, ctx: Ctx, params: list[str]) -> Reply:
        return _found(ctx.store.customer_json(params[0]), "customer")

    def _get_invoice(self, ctx: Ctx, params: list[str]) -> Reply:
        return _found(ctx.store.invoice_json(params[0]), "invoice")

    def _archive(self, ctx: Ctx, params: list[str]) -> Reply:
        return _found(ctx.store.archive(params[0]), "invoice")

    def _restore(self, ctx: Ctx, params: list[str]) -> Reply:
        return _found(ctx.store.restore(params[0]), "invoice")

    def _payment_link(self, ctx: Ctx, params: list[str]) -> Reply:
        status = ctx.store.invoice_status(params[0])
        if status is None:
            return error_reply(404, "not_found", "invoice not found")
        if status == "archived":
            return error_reply(422, "validation_error", "Validation Exception", {"status": "invoice is archived"})
        return json_reply(200, {"url": ctx.store.payment_link(params[0])})

    def _pdf_link(self, ctx: Ctx, params: list[str]) -> Reply:
        if ctx.store.invoice_status(params[0]) is None:
            return error_reply(404, "not_found", "invoice not found")
        return json_reply(200, ctx.store.pdf_link(params[0]))

    def _create_invoice(self, ctx: Ctx, _params: list[str]) -> Reply:
        try:
            payload = json.loads(ctx.body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError):
            return error_reply(400, "bad_request", "request body must be valid JSON")
        if not isinstance(payload, dict):
            return error_reply(400, "bad_request", "request body must be a JSON object")
        errors: dict[str, str] = {}

        customer_id = payload.get("customer_id")
        if not isinstance(customer_id, str) or not customer_id:
            errors["customer_id"] = "is required"
        elif ctx.store.customer_json(customer_id) is None:
            errors["customer_id"] = "customer not found"

        currency = payload.get("currency")
        if currency is None:
            errors["currency"] = "is required"
        elif currency != "USD":
            errors["currency"] = "must be one of: USD"

        due = _due_date(payload.get("due_date"), errors)

        autopay = payload.get("exclude_from_autopay", False)
        if autopay is None:
            autopay = False
        if not isinstance(autopay, bool):
            errors["exclude_from_autopay"] = "must be a boolean"

        memo = payload.get("memo")
        if memo is not None and not isinstance(memo, str):
            errors["memo"] = "must be a string"

        lines = _line_items(payload.get("line_items"), errors)

        if errors:
            return error_reply(422, "validation_error", "Validation Exception", errors)
        invoice = ctx.store.create_invoice(
            customer_id=str(customer_id),
            lines=lines,
            due_date=due,
            memo=memo,
            exclude_from_autopay=bool(autopay),
        )
        return json_reply(201, invoice)


def _due_date(raw: object, errors: dict[str, str]) -> dt.date | None:
    """`due_date` as the API takes it (YYYY-MM-DD, optional); a problem goes into `errors`."""
    if raw is None:
        return None
    if isinstance(raw, str) and _DATE.fullmatch(raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            pass
    errors["due_date"] = "must be a valid date in YYYY-MM-DD format"
    return None


def _line_items(raw: object, errors: dict[str, str]) -> list[NewLine]:
    """The valid line items; each problem goes into `errors` under the item's path."""
    if not isinstance(raw, list) or not raw:
        errors["line_items"] = "at least one line item is required"
        return []
    lines: list[NewLine] = []
    for i, item in enumerate(raw):
        where = f"line_items[{i}]"
        if not isinstance(item, dict):
            errors[where] = "must be an object"
            continue
        desc, amount, qty = item.get("description"), item.get("amount"), item.get("quantity")
        desc_v = desc if isinstance(desc, str) and desc.strip() else None
        amount_v = amount if _is_number(amount) and amount > 0 else None
        qty_v = qty if isinstance(qty, int) and not isinstance(qty, bool) and qty >= 1 else None
        if desc_v is None:
            errors[f"{where}.description"] = "is required"
        if amount_v is None:
            errors[f"{where}.amount"] = "must be a number greater than 0"
        if qty_v is None:
            errors[f"{where}.quantity"] = "must be an integer >= 1"
        if desc_v is not None and amount_v is not None and qty_v is not None:
            lines.append(NewLine(desc_v, amount_v, qty_v))
    return lines


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
