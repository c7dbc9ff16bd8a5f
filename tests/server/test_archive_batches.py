"""archive_invoices → restore_invoices(batch=…): one confirmation, exactly the previewed invoices,
every one back to its previous status, both batches in the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitResult

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.service.journal import JOURNAL_SCHEMA
from invoice_mcp.state import open_store

from ..conftest import settings_for, text_of

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_archive_by_filter_then_restore_by_batch(sandbox: Sandbox, state_url: str) -> None:
    before = {i["id"]: i["status"] for i in sandbox.invoices()}
    overdue = sorted(i["id"] for i in sandbox.invoices() if i["status"] == "overdue")
    asked: list[str] = []

    async def approve(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    settings = settings_for(sandbox, INVOICE_MCP_STATE=state_url)
    async with Client(build_server(settings), elicitation_callback=approve) as c:
        preview = await c.call_tool("archive_invoices", {"status": "overdue", "dry_run": True})
        assert preview.structured_content["outcome"] == "preview" and not asked
        listed = [r[1] for r in preview.structured_content["rows"]]
        assert len(listed) == len(overdue) and all(n in text_of(preview) for n in listed)
        assert len(sandbox.requests("DELETE")) == 0

        done = await c.call_tool("archive_invoices", {"status": "overdue"})
        assert not done.is_error, text_of(done)
        assert len(asked) == 1 and f"Archive {len(overdue)} invoices" in asked[0]
        bid = done.structured_content["batch_id"]
        assert done.structured_content["counts"]["archived"] == len(overdue)
        assert f'restore_invoices(batch="{bid}")' in text_of(done)
        assert (
            sorted(i["id"] for i in sandbox.invoices() if i["status"] == "archived" and before[i["id"]] != "archived")
            == overdue
        )

        back = await c.call_tool("restore_invoices", {"batch": bid})
        assert not back.is_error, text_of(back)
        assert back.structured_content["counts"]["restored"] == len(overdue)
        again = await c.call_tool("restore_invoices", {"batch": bid})
        assert again.structured_content["counts"]["restored"] == len(overdue)  # nothing left to do
    assert {i["id"]: i["status"] for i in sandbox.invoices()} == before
    store = open_store(state_url, schemas=[JOURNAL_SCHEMA])
    try:
        tools = store.transaction_sync(
            lambda tx: tx.fetchall("SELECT tool, batch_id, COUNT(*) FROM journal_entries GROUP BY tool, batch_id")
        )
    finally:
        store.close()
    assert sorted(tools) == sorted(
        [("archive_invoices", bid, len(overdue)), ("restore_invoices", f"r_{bid}", len(overdue))]
    )


async def test_archive_by_list_and_refusals(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = settings_for(sandbox, INVOICE_MCP_STATE=f"sqlite:///{tmp_path}/s.db", INVOICE_MCP_CONFIRM="never")
    open_ = [i for i in sandbox.invoices() if i["status"] == "open"][:2]
    async with Client(build_server(settings)) as c:
        res = await c.call_tool("archive_invoices", {"invoices": [open_[0]["invoice_number"], open_[1]["id"]]})
        assert res.structured_content["counts"]["archived"] == 2, text_of(res)
        assert res.structured_content["counts"]["confirmed"] == "policy"
        none = await c.call_tool("archive_invoices", {})
        assert none.is_error and "filter" in text_of(none)
        missing = await c.call_tool("archive_invoices", {"invoices": ["INV-999999"]})
        assert missing.is_error and "invoices[0]" in text_of(missing)
        empty = await c.call_tool("archive_invoices", {"status": "draft", "created_before": "2001-01-01"})
        assert empty.is_error and "nothing to archive" in text_of(empty)
        unknown = await c.call_tool("restore_invoices", {"batch": "b_unknown"})
        assert unknown.is_error and "no archive batch" in text_of(unknown)
        bad = await c.call_tool("archive_invoices", {"created_before": "2026-13-01"})
        assert bad.is_error


async def test_declined_archive_sends_nothing(sandbox: Sandbox) -> None:
    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    async with Client(build_server(settings_for(sandbox)), elicitation_callback=decline) as c:
        res = await c.call_tool("archive_invoices", {"status": "draft", "created_before": "2026-11-01"})
    assert res.structured_content["outcome"] == "not_sent" and res.structured_content["counts"]["rows"] == 1
    assert not sandbox.requests("DELETE")
