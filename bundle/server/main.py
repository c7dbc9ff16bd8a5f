"""Entry point of the MCP Bundle: the host runs it with `uv run` inside the unpacked bundle, where uv
has installed the bundled project (invoice_mcp and its dependencies) from the bundle's pyproject.toml."""

import sys

from invoice_mcp.faces.cli import main

if __name__ == "__main__":
    sys.exit(main())
