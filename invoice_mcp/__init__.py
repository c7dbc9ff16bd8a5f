"""invoice-mcp: an MCP server for Alternative Payments invoices."""

__version__ = "0.1.0"
