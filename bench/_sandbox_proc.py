"""A sandbox in its own process (so its CPU time and GIL stay out of the measuring process).

Prints the base URL on stdout, serves until stdin closes. Args: invoices [rate_limit|none].
"""

from __future__ import annotations

import sys

from _common import TODAY

from invoice_mcp.sandbox import Sandbox, SandboxConfig


def main() -> None:
    invoices = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rate = None if len(sys.argv) < 3 or sys.argv[2] == "none" else float(sys.argv[2])
    sb = Sandbox(SandboxConfig(invoices=invoices, rate_limit=rate, today=TODAY))
    sb.start()
    print(sb.base_url, flush=True)
    sys.stdin.read()
    sb.stop()


if __name__ == "__main__":
    main()
