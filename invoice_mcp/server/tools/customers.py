"""find_customers: company name → customer ids (for filters and creates)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.inputs import Strict
from invoice_mcp.server.render import DATA_NOTE, FullRow
from invoice_mcp.server.spec import READ_ONLY, ToolCall, result, tool
from invoice_mcp.text import clean, quoted

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService


PARTIAL_NOTE = (
    "(partial: the account has more customers than were searched; others may match. "
    "Pass a longer part of the exact name, or look the customer up in the dashboard)"
)


class FindInput(Strict):
    name: str = Field(min_length=1, max_length=200, description="Company name or part of it")


class CustomerRow(FullRow):
    id: str
    name: str | None = None
    email: str | None = None


class FindOutput(BaseModel):
    customers: list[CustomerRow]
    count: int
    partial: bool = False
    """More customers may match than were searched (the account's directory is larger than read)."""


@tool(title="Find customers", output=FindOutput, annotations=READ_ONLY)
async def find_customers(args: FindInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Find customers by company name (case-insensitive, partial). Returns ids for other tools."""
    found, partial = await svc.search_customers(args.name)
    rows = [
        CustomerRow(id=clean(c.id, 128), name=clean(c.name, 120) or None, email=clean(c.email, 120) or None)
        for c in found[:50]
    ]
    out = FindOutput(customers=rows, count=len(found), partial=partial)
    note = f" {PARTIAL_NOTE}" if partial else ""
    if not rows:
        return result(f"no customer matches {quoted(args.name, 60)}; try a shorter part of the name{note}", out)
    lines = [f"{len(found)} customers match" + (" (first 50):" if len(found) > len(rows) else ":") + note]
    lines += [f"{quoted(r.name, 120) if r.name else '(no name)'} | customer_id {r.id}" for r in rows]
    lines.append("Use customer_id in list_invoices, summarize_invoices or create_invoice.")
    lines.append(DATA_NOTE)
    return result("\n".join(lines), out)
