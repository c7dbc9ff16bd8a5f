"""`invoice-mcp journal export`: the write journal for accountants, on standard output.

One record per write (intent and outcome merged), oldest first, as JSON lines or CSV with a
header. Nothing secret is in the journal (arguments were redacted when recorded); CSV cells that
a spreadsheet would run as a formula are neutralised.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, date, datetime
from typing import IO, Any

from invoice_mcp.service.journal import ALL_COLUMNS, JOURNAL_SCHEMA, all_entries, iso
from invoice_mcp.state import StateError, open_store

FIELDS = (
    "id",
    "started_at",
    "finished_at",
    "actor",
    "tool",
    "confirmed",
    "outcome",
    "customer_id",
    "invoice_id",
    "invoice_number",
    "total",
    "batch_id",
    "batch_row",
    "duration_ms",
    "detail",
    "arguments",
)


def _cell(value: Any) -> str:
    text = "" if value is None else json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export(state: str | None, since: date, fmt: str, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        store = open_store(state, schemas=[JOURNAL_SCHEMA])
    except StateError as exc:
        print(f"invoice-mcp: {exc}", file=sys.stderr)
        return 2
    try:
        start = iso(datetime.combine(since, datetime.min.time(), UTC))
        rows = store.transaction_sync(
            lambda tx: tx.fetchall(
                f"SELECT {ALL_COLUMNS} FROM journal_entries WHERE started_at >= ? ORDER BY id", (start,)
            ),
            write=False,
        )
    finally:
        store.close()
    records = [e.record() for e in all_entries(rows)]
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        for r in records:
            writer.writerow([_cell(r.get(f)) for f in FIELDS])
    else:
        for r in records:
            out.write(json.dumps({f: r.get(f) for f in FIELDS}, separators=(",", ":"), sort_keys=False) + "\n")
    out.flush()
    return 0
