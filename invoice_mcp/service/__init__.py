"""The invoice service: workflows over the API client (paging and cursors, lookups,
customers, summaries, writes). Imports the API layer, never MCP."""

from invoice_mcp.service.core import AGING_BUCKETS, Chunk, InvoiceService, Summary

__all__ = ["AGING_BUCKETS", "Chunk", "InvoiceService", "Summary"]
