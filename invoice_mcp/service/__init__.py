"""The invoice service: workflows over the API client, one module per job
(chunks + cursors, customers, summaries, payments, writes, filters), composed by
InvoiceService. Imports the API layer, never MCP.

Names are loaded on first use (PEP 562), so importing `invoice_mcp.service.errors`
at start-up does not load the whole service and the wire models with it."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from invoice_mcp.service.chunks import Chunk as Chunk
    from invoice_mcp.service.invoices import InvoiceService as InvoiceService
    from invoice_mcp.service.invoices import Listed as Listed
    from invoice_mcp.service.invoices import PaymentsListed as PaymentsListed
    from invoice_mcp.service.invoices import looks_like_number as looks_like_number
    from invoice_mcp.service.query import InvoiceQuery as InvoiceQuery
    from invoice_mcp.service.query import PaymentQuery as PaymentQuery
    from invoice_mcp.service.summaries import AGING_BUCKETS as AGING_BUCKETS
    from invoice_mcp.service.summaries import Summary as Summary
    from invoice_mcp.service.summaries import Tally as Tally
    from invoice_mcp.service.writes import InvoiceToCreate as InvoiceToCreate
    from invoice_mcp.service.writes import LineToCreate as LineToCreate

_HOME = {
    "Chunk": "chunks",
    "InvoiceService": "invoices",
    "Listed": "invoices",
    "PaymentsListed": "invoices",
    "InvoiceQuery": "query",
    "PaymentQuery": "query",
    "looks_like_number": "invoices",
    "AGING_BUCKETS": "summaries",
    "Summary": "summaries",
    "Tally": "summaries",
    "InvoiceToCreate": "writes",
    "LineToCreate": "writes",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"invoice_mcp.service.{home}"), name)
