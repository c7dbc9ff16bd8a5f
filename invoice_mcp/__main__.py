"""``python -m invoice_mcp``: same as the ``invoice-mcp`` command."""

from .cli import main

raise SystemExit(main())
