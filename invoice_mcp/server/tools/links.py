"""get_invoice_payment_link and get_invoice_pdf_link: bearer links to one invoice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.spec import READ_ONLY, Handler, ToolCall, ToolSpec, result
from invoice_mcp.server.tools.detail import InvoiceInput
from invoice_mcp.text import clean

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService


class LinkOutput(BaseModel):
    invoice_id: str
    invoice_number: str | None
    url: str = Field(description="Bearer link: anyone holding it can pay/view. Share only with the customer.")
    expires_at: str | None


def _link_tool(kind: Literal["payment", "pdf"]) -> Handler[InvoiceInput]:
    async def handler(args: InvoiceInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
        invoice_id, inv = await svc.invoice_id(args.invoice)
        link = await (svc.payment_link(invoice_id) if kind == "payment" else svc.pdf_link(invoice_id))
        if not link.url:
            raise ToolError(f"the API returned no {kind} link for invoice {args.invoice}")
        number = inv.invoice_number if inv else None
        out = LinkOutput(invoice_id=invoice_id, invoice_number=number, url=link.url, expires_at=link.expires_at)
        label = "payment link" if kind == "payment" else "PDF link"
        text = f"{label} for {clean(number or invoice_id, 64)}: {link.url}"
        if link.expires_at:
            text += f" (expires {clean(link.expires_at, 40)})"
        text += "\nBearer secret: give it only to this invoice's customer; do not post it anywhere else."
        return result(text, out)

    return handler


SPEC_PAYMENT_LINK = ToolSpec(
    name="get_invoice_payment_link",
    title="Get payment link",
    description="The customer's payment URL for an invoice. It is a bearer secret: share only with that customer.",
    input=InvoiceInput,
    output=LinkOutput,
    annotations=READ_ONLY,
    handler=_link_tool("payment"),
)

SPEC_PDF_LINK = ToolSpec(
    name="get_invoice_pdf_link",
    title="Get PDF link",
    description="A signed URL of the invoice PDF. Bearer secret: share only with the invoice's customer.",
    input=InvoiceInput,
    output=LinkOutput,
    annotations=READ_ONLY,
    handler=_link_tool("pdf"),
)
