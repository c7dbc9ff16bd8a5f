"""One place where failures become messages a model can act on: domain errors of
the service and errors of the API layer, mapped by type to `ToolError`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from invoice_mcp.api.errors import (
    APIError,
    CredentialsError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    UpstreamError,
)
from invoice_mcp.logs import RedactingFilter
from invoice_mcp.service.errors import (
    AmbiguousCustomer,
    DuplicateInvoice,
    InvalidCursor,
    NotFound,
    PossiblyCreated,
    RunawayUpstream,
    ServiceError,
)
from invoice_mcp.text import clean, quoted

_REDACT = RedactingFilter()
"""Credentials an API echoes back (`Authorization: Basic …`, access_token=…) never reach a tool result."""

_FIND = {
    "invoice": "find it with list_invoices(invoice_number=…) or list_invoices(customer=…)",
    "customer": "look it up with find_customers(name=…) and pass its customer_id",
}


def message(exc: ServiceError | APIError) -> str:
    """The model-facing text for a failure (no traceback, no secrets, hostile text cleaned)."""
    match exc:
        case NotFound(by_name=True):
            return (
                f"no {exc.kind} matches {quoted(exc.ref, 80)}; try a shorter part of the name with "
                "find_customers(name=…)"
            )
        case NotFound():
            return f"no {exc.kind} {quoted(exc.ref, 80)} found; {_FIND[exc.kind]}"
        case AmbiguousCustomer():
            listed = "; ".join(f"{quoted(c.name, 60)} (customer_id={clean(c.id, 64)})" for c in exc.matches[:10])
            more = f" and {len(exc.matches) - 10} more" if len(exc.matches) > 10 else ""
            return (
                f"customer name {quoted(exc.name, 60)} matches {len(exc.matches)} customers: {listed}{more}. "
                "Ask the user which one, then pass customer_id."
            )
        case InvalidCursor() | RunawayUpstream():
            return exc.message
        case PossiblyCreated():
            return (
                f"the create failed in a way where the invoice may have been created ({clean(exc.message, 200)}). "
                f"Do not retry blindly: first check list_invoices(customer_id={exc.customer_id!r}, "
                f"created_at_start={exc.started!r}) (when the create started: UTC, on the API's clock)."
            )
        case DuplicateInvoice():
            return _duplicate(exc)
        case ServiceError():
            return clean(exc.message, 500)
        case NotFoundError():
            return f"not found ({clean(exc.message, 200)}); {_FIND['invoice']}"
        case InvalidRequestError() if exc.validation_errors:
            fields = "; ".join(f"{clean(k, 60)}: {clean(v, 200)}" for k, v in exc.validation_errors.items())
            return f"the API rejected the request: {fields}. Fix these and call again."
        case InvalidRequestError():
            return f"the API rejected the request: {clean(exc.message, 300)}"
        case CredentialsError():
            return (
                f"credentials problem: {clean(exc.message, 200)}. The server's administrator must fix "
                "AP_CLIENT_ID / AP_CLIENT_SECRET / AP_ENVIRONMENT (on a gateway: the caller's "
                "X-Alternative-Payments-Client-Id / -Client-Secret / -Environment headers); retrying will not help."
            )
        case RateLimitedError():
            return f"rate limited by the API; retry in {max(1, round(exc.retry_after))} s"
        case UpstreamError():
            return f"the API is failing right now ({clean(exc.message, 200)}); retry in a few seconds"
        case _:
            return f"API error: {clean(exc.message, 300)}"


def _duplicate(exc: DuplicateInvoice) -> str:
    cid, at = clean(exc.customer_id, 64), clean(exc.at, 32)
    check = f"list_invoices(customer_id={cid!r}, created_at_start={at!r})"
    if exc.state == "pending":
        return (
            "not created: an identical invoice for this customer is being created right now by another call. "
            f"Do not retry; in a moment check {check}."
        )
    if exc.state == "possibly":
        return (
            f"not created: an identical create at {at} failed in a way where the invoice may have been created, "
            f"so this one was refused. Check {check}; only if it is not there and the user still wants it, "
            "call again with allow_duplicate=true."
        )
    number = clean(exc.invoice_number or exc.invoice_id, 64)
    where = "the API already has" if exc.source == "api" else "this server created"
    return (
        f"not created: {where} an identical invoice ({number}, id {clean(exc.invoice_id, 64)}) for this customer "
        "in the last 10 minutes. If a second one is really wanted, call again with allow_duplicate=true."
    )


def safe_message(exc: ServiceError | APIError) -> str:
    """`message(exc)` with echoed credentials redacted: for failures a result reports without failing."""
    return _REDACT.redact(message(exc), urls=False)


@contextmanager
def tool_errors() -> Iterator[None]:
    try:
        yield
    except (ServiceError, APIError) as exc:
        raise ToolError(_REDACT.redact(message(exc), urls=False)) from None
