"""Registry invariants: names, titles, explicit hints, read-only derivation, schema snapshot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.server.registry import TOOLS, select_tools

from .conftest import settings_for

pytestmark = pytest.mark.anyio
SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"

EXPECTED = {
    # name: (read_only, destructive, idempotent)
    "list_invoices": (True, False, True),
    "get_invoice": (True, False, True),
    "summarize_invoices": (True, False, True),
    "find_customers": (True, False, True),
    "create_invoice": (False, False, False),
    "archive_invoice": (False, True, True),
    "restore_invoice": (False, False, True),
    "get_invoice_payment_link": (True, False, True),
    "get_invoice_pdf_link": (True, False, True),
}


async def test_every_tool_has_title_and_every_hint_explicit(sandbox: Sandbox) -> None:
    async with Client(build_server(settings_for(sandbox))) as c:
        tools = (await c.list_tools()).tools
    assert {t.name for t in tools} == set(EXPECTED)
    for t in tools:
        a = t.annotations
        assert t.title and t.description and a is not None
        hints = (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        assert None not in hints, t.name
        assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint) == EXPECTED[t.name]
        assert t.output_schema is not None and t.input_schema["type"] == "object"


def test_read_only_selection_is_derived_from_annotations() -> None:
    ro = select_tools(read_only=True)
    assert {t.name for t in ro} == {n for n, (r, _, _) in EXPECTED.items() if r}
    assert all(t.annotations.read_only_hint for t in ro)
    assert len(select_tools(read_only=False)) == len(TOOLS)


async def test_read_only_mode_lists_and_serves_no_writer(sandbox: Sandbox) -> None:
    async with Client(build_server(settings_for(sandbox, INVOICE_MCP_READ_ONLY="1"))) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {n for n, (r, _, _) in EXPECTED.items() if r}
        for writer in ("create_invoice", "archive_invoice", "restore_invoice"):
            r = await c.call_tool(writer, {"invoice": "INV-1001"})
            assert r.is_error
    assert not sandbox.requests(method="POST", path_prefix="/invoices")
    assert not sandbox.requests(method="DELETE")


async def test_schemas_match_snapshot(sandbox: Sandbox) -> None:
    """Tool schemas are the public contract: change them deliberately
    (UPDATE_SNAPSHOTS=1 pytest tests/test_registry.py)."""
    async with Client(build_server(settings_for(sandbox))) as c:
        tools = (await c.list_tools()).tools
    current = {
        t.name: {
            "title": t.title,
            "description": t.description,
            "input": t.input_schema,
            "output": t.output_schema,
            "annotations": t.annotations.model_dump(by_alias=True, exclude_none=True) if t.annotations else None,
        }
        for t in sorted(tools, key=lambda t: t.name)
    }
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


async def test_input_schemas_carry_bounds_enums_and_formats(sandbox: Sandbox) -> None:
    async with Client(build_server(settings_for(sandbox))) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    props = tools["list_invoices"].input_schema["properties"]
    assert props["limit"]["maximum"] == 100 and props["limit"]["default"] == 25
    assert "overdue" in props["status"]["enum"]
    create = tools["create_invoice"].input_schema
    item = create["$defs"]["LineItemIn"]["properties"]
    assert item["amount"]["exclusiveMinimum"] == 0 and item["quantity"]["minimum"] == 1
    assert create["properties"]["currency"]["const"] == "USD"
    assert create["properties"]["due_date"]["pattern"]
