"""``python -m invoice_mcp``: same as the ``invoice-mcp`` command."""

from invoice_mcp.faces.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
