"""get_invoice_payment_link and get_invoice_pdf_link: bearer links to one invoice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.spec import READ_ONLY, ToolCall, result, tool
from invoice_mcp.server.tools.detail import InvoiceInput
from invoice_mcp.text import clean

if TYPE_CHECKING:
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service import InvoiceService


class LinkOutput(BaseModel):
    invoice_id: str
    invoice_number: str | None = None
    url: str = Field(description="Bearer link: anyone holding it can pay/view. Share only with the customer.")
    expires_at: str | None = None


class PaymentLinkOutput(LinkOutput):
    warning: str | None = Field(None, description="Set when the invoice is not payable (paid, archived, void…)")


def payment_warning(ref: str, status: str | None) -> str | None:
    """Why a payment link should not be sent as a request to pay (None when the invoice is owed)."""
    from invoice_mcp.service.statuses import is_owed

    st = clean(status, 32).lower()
    if is_owed(status):
        return None
    if st == "paid":
        return f"{ref} is already paid: nothing is owed. Do not send this link as a request to pay."
    if st == "archived":
        return (
            f"{ref} is archived: it cannot be paid and the customer no longer sees it. Do not send this link; "
            f"if it is really owed, restore_invoice(invoice={ref!r}) first."
        )
    return f"{ref} has status {st}: nothing is owed on it. Do not send this link as a request to pay."


async def _link(args: InvoiceInput, svc: InvoiceService, kind: Literal["payment", "pdf"]) -> CallToolResult:
    inv: Invoice | None
    if kind == "payment":  # the status decides whether this link may be sent at all
        inv = await svc.resolve_invoice(args.invoice)
        invoice_id = inv.id or args.invoice
    else:
        invoice_id, inv = await svc.invoice_id(args.invoice)
    link = await (svc.payment_link(invoice_id) if kind == "payment" else svc.pdf_link(invoice_id))
    if not link.url:
        raise ToolError(f"the API returned no {kind} link for invoice {args.invoice}")
    number = inv.invoice_number if inv else None
    ref = clean(number or invoice_id, 64)
    warning = payment_warning(ref, inv.status) if kind == "payment" and inv is not None else None
    out: LinkOutput
    if kind == "payment":
        out = PaymentLinkOutput(
            invoice_id=invoice_id, invoice_number=number, url=link.url, expires_at=link.expires_at, warning=warning
        )
    else:
        out = LinkOutput(invoice_id=invoice_id, invoice_number=number, url=link.url, expires_at=link.expires_at)
    label = "payment link" if kind == "payment" else "PDF link"
    text = (f"WARNING: {warning}\n" if warning else "") + f"{label} for {ref}: {link.url}"
    if link.expires_at:
        text += f" (expires {clean(link.expires_at, 40)})"
    text += "\nBearer secret: give it only to this invoice's customer; do not post it anywhere else."
    return result(text, out)


@tool(title="Get payment link", output=PaymentLinkOutput, annotations=READ_ONLY)
async def get_invoice_payment_link(args: InvoiceInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """The customer's payment URL for an invoice (bearer secret: only for that customer); warns if not owed."""
    return await _link(args, svc, "payment")


@tool(title="Get PDF link", output=LinkOutput, annotations=READ_ONLY)
async def get_invoice_pdf_link(args: InvoiceInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """A signed URL of the invoice PDF. Bearer secret: share only with the invoice's customer."""
    return await _link(args, svc, "pdf")
