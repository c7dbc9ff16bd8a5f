"""The tool registry: one list of tools, and filters derived from their annotations
(read-only mode keeps exactly the tools annotated read-only)."""

from __future__ import annotations

from typing import Any

from invoice_mcp.server.spec import ToolSpec
from invoice_mcp.server.tools.activity import recent_activity
from invoice_mcp.server.tools.batch_changes import archive_invoices, restore_invoices
from invoice_mcp.server.tools.batches import create_invoices
from invoice_mcp.server.tools.customers import find_customers
from invoice_mcp.server.tools.detail import get_invoice
from invoice_mcp.server.tools.links import get_invoice_payment_link, get_invoice_pdf_link
from invoice_mcp.server.tools.listing import list_invoices, summarize_invoices
from invoice_mcp.server.tools.payments import list_payments
from invoice_mcp.server.tools.writes import archive_invoice, create_invoice, restore_invoice

TOOLS: tuple[ToolSpec[Any], ...] = (
    list_invoices,
    get_invoice,
    summarize_invoices,
    find_customers,
    list_payments,
    create_invoice,
    create_invoices,
    archive_invoice,
    restore_invoice,
    archive_invoices,
    restore_invoices,
    get_invoice_payment_link,
    get_invoice_pdf_link,
    recent_activity,
)


def select_tools(*, read_only: bool, tools: tuple[ToolSpec[Any], ...] = TOOLS) -> tuple[ToolSpec[Any], ...]:
    return tuple(t for t in tools if t.read_only or not read_only)
