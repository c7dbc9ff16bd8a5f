"""Confirmation is a step over the already-validated input, and each write looks its subject up
once: the question, the preview and the write itself share one look-up (counted in the sandbox's
request log). Legacy clients answer mid-call, so one call is one round; a 2026-07-28 client
answers in a second round, which runs the look-up again (the round carries no server state)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client, types
from mcp.client.context import ClientRequestContext

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

from ..conftest import settings_for, text_of

pytestmark = pytest.mark.anyio


def gets(sb: Sandbox, prefix: str) -> list[str]:
    return [r.raw_path for r in sb.requests(method="GET", path_prefix=prefix)]


async def confirmed_call(sb: Sandbox, tool: str, args: dict[str, Any]) -> tuple[Any, list[str]]:
    """One call by a client that shows confirmations, and the questions it was asked."""
    asked: list[str] = []

    async def accept(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"ok": True})

    async with Client(build_server(settings_for(sb)), mode="legacy", elicitation_callback=accept) as c:
        await c.list_tools()
        sb.clear_log()
        return await c.call_tool(tool, args), asked


async def test_archive_by_number_reads_the_invoice_once(sandbox: Sandbox) -> None:
    inv = next(i for i in sandbox.invoices(include_archived=False) if i["status"] == "open")
    r, asked = await confirmed_call(sandbox, "archive_invoice", {"invoice": inv["invoice_number"]})
    assert not r.is_error and r.structured_content["outcome"] == "archived", text_of(r)
    assert len(asked) == 1 and inv["invoice_number"] in asked[0]
    assert len(gets(sandbox, "/invoices")) == 1, gets(sandbox, "/invoices")  # the question's read serves the archive
    assert [q.raw_path for q in sandbox.requests(method="DELETE")] == [f"/invoices/{inv['id']}"]


async def test_create_reads_the_customer_once(sandbox: Sandbox) -> None:
    customer = sandbox.customers()[0]
    line = {"description": "Seat", "amount": 10, "quantity": 2}
    r, asked = await confirmed_call(sandbox, "create_invoice", {"customer_id": customer["id"], "line_items": [line]})
    assert not r.is_error and r.structured_content["outcome"] == "created", text_of(r)
    assert len(asked) == 1 and customer["name"][:20] in asked[0]
    assert len(gets(sandbox, "/customers")) == 1, gets(sandbox, "/customers")
    assert len(sandbox.requests(method="POST", path_prefix="/invoices")) == 1


async def test_a_billing_run_resolves_its_rows_once(sandbox: Sandbox) -> None:
    names = [c["name"] for c in sandbox.customers()[:3]]
    rows = [{"customer": n, "line_items": [{"description": "Audit", "amount": 50, "quantity": 1}]} for n in names]
    r, asked = await confirmed_call(sandbox, "create_invoices", {"rows": rows})
    assert not r.is_error and r.structured_content["counts"].get("created") == 3, text_of(r)
    assert len(asked) == 1 and "3 LIVE" in asked[0]
    assert len(gets(sandbox, "/customers")) == 1, gets(sandbox, "/customers")  # one directory read for 3 names


async def test_a_clean_up_finds_its_targets_once(sandbox: Sandbox) -> None:
    inv = next(i for i in sandbox.invoices(include_archived=False) if i["status"] == "open")
    name = next(c["name"] for c in sandbox.customers() if c["id"] == inv["customer_id"])
    r, asked = await confirmed_call(sandbox, "archive_invoices", {"customer": name, "status": "open"})
    assert not r.is_error, text_of(r)
    assert len(asked) == 1
    assert gets(sandbox, "/") == ["/customers", "/invoices"]  # the name, then one walk for question and run


async def test_a_modern_client_answers_in_a_second_round_that_reads_again_once(sandbox: Sandbox) -> None:
    """2026-07-28: the question goes out as `input_required`, the answer comes back in a retried call
    that carries no server state, so each round reads the invoice once: two reads, the archive none."""
    inv = next(i for i in sandbox.invoices(include_archived=False) if i["status"] == "open")

    async def accept(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"ok": True})

    async with Client(build_server(settings_for(sandbox)), elicitation_callback=accept) as c:
        await c.list_tools()
        sandbox.clear_log()
        r = await c.call_tool("archive_invoice", {"invoice": inv["invoice_number"]})
    assert not r.is_error and r.structured_content["outcome"] == "archived", text_of(r)
    assert len(gets(sandbox, "/invoices")) == 2, gets(sandbox, "/invoices")
    assert len(sandbox.requests(method="DELETE")) == 1
