"""Domain errors of the invoice service. The MCP layer maps them to tool errors by
type (server/errors.py); nothing here knows how a model will read them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from invoice_mcp.api.models import Customer


class ServiceError(Exception):
    """Base of what the service refuses or cannot find."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """No `kind` named `ref` (an invoice id or number, a customer id or name)."""

    def __init__(self, kind: Literal["invoice", "customer"], ref: str, *, by_name: bool = False) -> None:
        super().__init__(f"no {kind} {ref!r}")
        self.kind = kind
        self.ref = ref
        self.by_name = by_name
        """True when `ref` was a (partial) name rather than an id or number."""


class AmbiguousCustomer(ServiceError):
    """A customer name matches several customers: the user must choose."""

    def __init__(self, name: str, matches: list[Customer]) -> None:
        super().__init__(f"customer name {name!r} matches {len(matches)} customers")
        self.name = name
        self.matches = matches


class InvalidCursor(ServiceError):
    """A cursor that is malformed, altered, from another server or for other filters."""


class RunawayUpstream(ServiceError):
    """The API's pagination does not advance (the same cursor came back): stopped rather than loop."""


class PossiblyCreated(ServiceError):
    """A create failed in a way where the invoice may exist (timeout after sending, 5xx after the POST)."""

    def __init__(self, message: str, customer_id: str, started: str) -> None:
        super().__init__(message)
        self.customer_id = customer_id
        self.started = started


class DuplicateInvoice(ServiceError):
    """An identical create is in progress, was made in the last minutes, or may have been made
    (an earlier identical create failed ambiguously): refused unless allow_duplicate is set."""

    def __init__(
        self,
        state: Literal["pending", "created", "possibly"],
        customer_id: str,
        at: str,
        *,
        invoice_id: str | None = None,
        invoice_number: str | None = None,
        source: Literal["server", "api"] = "server",
    ) -> None:
        super().__init__(f"duplicate create refused ({state})")
        self.state = state
        self.customer_id = customer_id
        self.at = at
        self.invoice_id = invoice_id
        self.invoice_number = invoice_number
        self.source = source


class GuardUnavailable(ServiceError):
    """The duplicate guard's shared store (Redis) cannot be used: nothing was sent."""


class UnusableLink(ServiceError):
    """The API returned a payment/PDF link that is not a single-line https URL of sane length."""
