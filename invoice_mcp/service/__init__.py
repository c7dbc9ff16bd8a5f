"""The invoice service: workflows over the API client, one module per job
(chunks + cursors, customers, summaries, writes), composed by InvoiceService.
Imports the API layer, never MCP."""

from invoice_mcp.service.chunks import Chunk
from invoice_mcp.service.filters import LocalFilter
from invoice_mcp.service.invoices import (
    InvoiceService,
    Listed,
    PaymentsListed,
    PaymentsQuery,
    Query,
    looks_like_number,
)
from invoice_mcp.service.summaries import AGING_BUCKETS, Summary, Tally
from invoice_mcp.service.writes import Draft, DraftLine

__all__ = [
    "AGING_BUCKETS",
    "Chunk",
    "Draft",
    "DraftLine",
    "InvoiceService",
    "Listed",
    "LocalFilter",
    "PaymentsListed",
    "PaymentsQuery",
    "Query",
    "Summary",
    "Tally",
    "looks_like_number",
]
