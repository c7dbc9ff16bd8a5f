"""The API layer: the only code that talks HTTP to Alternative Payments. Imports nothing of MCP."""
