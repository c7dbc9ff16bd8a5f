"""recent_activity, the activity resource and `invoice-mcp journal export`: what the server wrote,
readable in both host views, paged, filtered, and free of any secret (a grep test)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

from .conftest import settings_for, text_of
from .procs import run_cli

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def _activity(sb: Sandbox, url: str) -> dict[str, Any]:
    """A create, a 3-row batch, an archive and a link fetch, then every view of the journal."""
    settings = settings_for(sb, INVOICE_MCP_STATE=url, INVOICE_MCP_CONFIRM="never")
    cust = sb.customers()
    line = {"description": "Activity seat", "amount": 30, "quantity": 2}
    async with Client(build_server(settings)) as c:
        one = await c.call_tool("create_invoice", {"customer_id": cust[0]["id"], "line_items": [line]})
        rows = [{"customer": cust[i]["id"], "line_items": [line | {"description": f"Row {i}"}]} for i in range(1, 4)]
        batch = await c.call_tool("create_invoices", {"rows": rows})
        number = one.structured_content["invoice_number"]
        archived = await c.call_tool("archive_invoice", {"invoice": number})
        link = await c.call_tool("get_invoice_payment_link", {"invoice": batch.structured_content["rows"][0][2]})
        assert not any(r.is_error for r in (one, batch, archived, link)), text_of(link)
        full = await c.call_tool("recent_activity", {})
        page1 = await c.call_tool("recent_activity", {"limit": 2})
        page2 = await c.call_tool("recent_activity", {"limit": 2, "cursor": page1.structured_content["next_cursor"]})
        only = await c.call_tool("recent_activity", {"tool": "create_invoices", "outcome": "created"})
        by_customer = await c.call_tool("recent_activity", {"customer": cust[0]["name"]})
        resource = await c.read_resource("activity://recent")
        day = await c.read_resource(f"activity://{sb.today().isoformat()}")
        assert json.loads(day.contents[0].text) == json.loads(resource.contents[0].text)  # type: ignore[union-attr]
        none = await c.read_resource("activity://2001-01-01")
        assert json.loads(none.contents[0].text) == []  # type: ignore[union-attr]
    return {
        "number": number,
        "batch": batch,
        "link": link.structured_content,
        "full": full,
        "page1": page1,
        "page2": page2,
        "only": only,
        "by_customer": by_customer,
        "resource": resource.contents[0].text,  # type: ignore[union-attr]
    }


async def test_recent_activity_views_paging_filters_and_no_secret(sandbox: Sandbox, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    got = await _activity(sandbox, url)
    full = got["full"]
    lines = text_of(full).splitlines()
    assert full.structured_content["count"] == 5 and len(lines) == 7  # header, 5 writes, end
    assert any(got["number"] in ln and "archive_invoice archived" in ln for ln in lines)
    assert sum("create_invoices created INV" in ln and "[batch b_" in ln for ln in lines) == 3
    assert all("confirmed: policy" in ln for ln in lines[1:-1])
    sc_rows = full.structured_content["rows"]
    assert {r[1] for r in sc_rows} == {"create_invoice", "create_invoices", "archive_invoice"}
    # paging: the text ends with the exact next call, and the pages do not overlap
    assert 'next: recent_activity(cursor="' in text_of(got["page1"])
    ids1 = [r[3] for r in got["page1"].structured_content["rows"]]
    ids2 = [r[3] for r in got["page2"].structured_content["rows"]]
    assert len(ids1) == len(ids2) == 2 and not set(ids1) & set(ids2)
    assert got["only"].structured_content["count"] == 3
    assert got["by_customer"].structured_content["count"] == 2  # its create and its archive
    assert len(json.loads(got["resource"])) == 5

    # the export, through the real command line
    jsonl = run_cli(["journal", "export", "--since", "2026-01-01", "--state", url], env={}, cwd=tmp_path)
    assert jsonl.returncode == 0, jsonl.stderr
    records = [json.loads(ln) for ln in jsonl.stdout.splitlines()]
    assert len(records) == 5 and all(r["finished_at"] and r["outcome"] != "pending" for r in records)
    assert records[0]["arguments"]["line_items"][0]["description"] == "Activity seat"
    out = run_cli(
        ["--state", url, "journal", "export", "--since", "2026-01-01", "--format", "csv"], env={}, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(table) == 5 and table[0]["tool"] == "create_invoice" and "invoice_number" in table[0]
    later = run_cli(["journal", "export", "--since", "2099-01-01", "--state", url], env={}, cwd=tmp_path)
    assert later.returncode == 0 and later.stdout == ""

    # no secret anywhere: client secret, tokens, payment or PDF links
    secrets = [sandbox.config.client_secret, *sandbox.issued_tokens, got["link"]["url"]]
    texts = [text_of(full), json.dumps(full.structured_content), got["resource"], jsonl.stdout, out.stdout]
    for secret in secrets:
        assert secret and all(secret not in t for t in texts), "a secret leaked"
    assert all("http" not in t for t in texts)


async def test_activity_refusals(sandbox: Sandbox) -> None:
    async with Client(build_server(settings_for(sandbox))) as c:
        bad = await c.call_tool("recent_activity", {"since": "2026-02-30"})
        assert bad.is_error and "since" in text_of(bad)
        cursor = await c.call_tool("recent_activity", {"cursor": "abc"})
        assert cursor.is_error and "cursor" in text_of(cursor)
        empty = await c.call_tool("recent_activity", {"since": "2026-01-01", "until": "2026-01-02"})
        assert empty.structured_content["count"] == 0 and "(end)" in text_of(empty)


def test_export_refusals(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    bad_state = run_cli(
        ["journal", "export", "--since", "2026-01-01", "--state", f"sqlite:///{tmp_path}/f/s.db"], env={}, cwd=tmp_path
    )
    assert bad_state.returncode == 2 and "state store" in bad_state.stderr and "Traceback" not in bad_state.stderr
    bad_date = run_cli(["journal", "export", "--since", "yesterday"], env={}, cwd=tmp_path)
    assert bad_date.returncode == 2 and "not a date" in bad_date.stderr
