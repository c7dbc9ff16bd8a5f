"""The MCP layer: tools, prompts and resources over the invoice service."""

from invoice_mcp.server.app import AppState, InvoiceMCPServer, build_server

__all__ = ["AppState", "InvoiceMCPServer", "build_server"]
