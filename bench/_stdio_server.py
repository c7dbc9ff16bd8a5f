"""Bench-local stdio launcher: settings from the environment, then `build_server(settings).run()`.

Used when `invoice_mcp/__main__.py` (the real CLI) is not there, or when BENCH_SERVER=script.
"""

from __future__ import annotations

from invoice_mcp.api.settings import load_settings
from invoice_mcp.server import build_server


def main() -> None:
    build_server(load_settings()).run()


if __name__ == "__main__":
    main()
