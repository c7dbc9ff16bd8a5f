"""Empty and partial answers say what was looked at: the fields a text search reads, how many
invoices were scanned, whether archived invoices and drafts count, and "N of M" where known."""

from __future__ import annotations

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox

from ..conftest import text_of

pytestmark = pytest.mark.anyio


async def test_an_empty_text_search_says_what_it_read_and_how_much(mcp_client: Client, sandbox: Sandbox) -> None:
    r = await mcp_client.call_tool("list_invoices", {"text": "migration-that-never-was"})
    assert not r.is_error, text_of(r)
    text = text_of(r)
    visible = len(sandbox.invoices(include_archived=False))
    assert text.startswith("no invoices match (text «migration-that-never-was»)")
    assert "text searched in memo, line item descriptions and customer name" in text
    assert f"{visible} invoices scanned in this call" in text
    assert "archived invoices excluded (status=archived lists them); drafts included" in text
    sc = r.structured_content
    assert sc is not None and "memo, line item descriptions and customer name" in sc["scope"]
    assert f"{visible} invoices scanned" in sc["scope"]


async def test_a_whole_answer_says_n_of_n_and_a_plain_empty_one_its_scope(mcp_client: Client, sandbox: Sandbox) -> None:
    cid = sandbox.customers()[0]["id"]
    mine = [i for i in sandbox.invoices(include_archived=False) if i["customer_id"] == cid]
    r = await mcp_client.call_tool("list_invoices", {"customer_id": cid, "limit": 100})
    n = len(mine)
    assert 0 < n < 100 and text_of(r).startswith(f"{n} of {n} invoices")
    assert r.structured_content is not None and "scope" not in r.structured_content  # nothing to qualify
    absent = next(
        (c["id"], st)
        for st in ("partially_paid", "draft", "overdue", "open")
        for c in sandbox.customers()
        if not any(i["customer_id"] == c["id"] and i["status"] == st for i in sandbox.invoices())
    )
    none = await mcp_client.call_tool("list_invoices", {"customer_id": absent[0], "status": absent[1]})
    assert not none.is_error, text_of(none)
    assert "looked at: archived invoices excluded (status=archived lists them); drafts excluded" in text_of(none)
    archived = await mcp_client.call_tool("list_invoices", {"status": "archived", "text": "zzzz-nothing"})
    assert "archived invoices only" in text_of(archived)
