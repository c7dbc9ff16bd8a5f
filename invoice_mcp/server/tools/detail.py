"""get_invoice: one invoice in full."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.types import CallToolResult

from invoice_mcp.server.inputs import InvoiceRef, Strict
from invoice_mcp.server.render import InvoiceDetail, detail, detail_text
from invoice_mcp.server.spec import READ_ONLY, ToolCall, result, tool

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService


class InvoiceInput(Strict):
    invoice: InvoiceRef


@tool(title="Get invoice", output=InvoiceDetail, annotations=READ_ONLY)
async def get_invoice(args: InvoiceInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """One invoice in full: line items (unit price × quantity, dollars), totals, dates, memo, status, payments, amount
    paid, balance due, when paid."""
    inv = await svc.resolve_invoice(args.invoice)
    name = await svc.customer_name(inv.customer_id)
    d = detail(inv, name, await svc.invoice_ledger(inv))
    return result(detail_text(d), d)
