"""`invoice-mcp demo`: the README's main job runs end to end and shows every step."""

from __future__ import annotations

from pathlib import Path

import pytest

from .procs import run_cli

pytestmark = pytest.mark.slow

MARKERS = [
    "User: show me my most recent invoices",
    '→ list_invoices {"limit": 5}',
    "User: next page, please",
    '"cursor":',
    "→ summarize_invoices",
    "(progress:",
    "→ find_customers",
    '"dry_run": true',
    "(dry run: nothing created",
    "the server asks the user to confirm:",
    "← Created INV-",
    "→ archive_invoice",
    "Archive invoice INV-",
    "← Archived INV-",
    "→ restore_invoice",
    "← Restored INV-",
    "→ get_invoice_payment_link",
    "payment link for",
    "→ get_invoice_pdf_link",
    "PDF link for",
    "upstream API requests",
]


def test_demo_runs_every_step(tmp_path: Path) -> None:
    res = run_cli(["demo"], {}, tmp_path, timeout=60)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout
    missing = [m for m in MARKERS if m not in out]
    assert not missing, f"missing {missing} in:\n{out}"
    # Links are bearer secrets: printed truncated, never whole.
    links = [w for w in out.split() if w.startswith("https://")]
    assert links and all(w.endswith("…") and len(w) <= 31 for w in links), links
    assert "DEMO FAILED" not in out and "Traceback" not in res.stderr
