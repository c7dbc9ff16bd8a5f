"""Registry invariants: names, titles, explicit hints, read-only derivation, schema snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import Tool

from invoice_mcp.api.settings import load_settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.server.registry import TOOLS, select_tools

from .conftest import settings_for, text_of

pytestmark = pytest.mark.anyio
SNAPSHOTS = Path(__file__).parent / "snapshots" / "tools"
# Listing tools needs settings but no API: nothing is called.
_OFFLINE_ENV = {"AP_CLIENT_ID": "id", "AP_CLIENT_SECRET": "secret", "AP_BASE_URL": "https://api.invalid"}

EXPECTED = {
    # name: (read_only, destructive, idempotent)
    "list_invoices": (True, False, True),
    "get_invoice": (True, False, True),
    "summarize_invoices": (True, False, True),
    "find_customers": (True, False, True),
    "list_payments": (True, False, True),
    "create_invoice": (False, False, False),
    "create_invoices": (False, False, True),
    "archive_invoice": (False, True, True),
    "restore_invoice": (False, False, True),
    "archive_invoices": (False, True, True),
    "restore_invoices": (False, False, True),
    "get_invoice_payment_link": (True, False, True),
    "get_invoice_pdf_link": (True, False, True),
    "recent_activity": (True, False, True),
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


def _writer_calls(sb: Sandbox) -> dict[str, dict[str, Any]]:
    """Valid arguments for every writer: the read-write server below carries each of them out."""
    inv = next(i for i in sb.invoices(include_archived=False) if i["status"] == "open")
    line = {"description": "Audit", "amount": 120, "quantity": 1}
    return {
        "create_invoice": {"customer_id": sb.customers()[0]["id"], "line_items": [line]},
        "create_invoices": {"rows": [{"customer": sb.customers()[1]["id"], "line_items": [line]}]},
        "archive_invoice": {"invoice": inv["id"]},
        "restore_invoice": {"invoice": inv["id"]},
    }


@pytest.mark.slow
async def test_read_only_mode_lists_and_serves_no_writer(sandbox: Sandbox) -> None:
    calls = _writer_calls(sandbox)
    async with Client(build_server(settings_for(sandbox, INVOICE_MCP_READ_ONLY="1"))) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {n for n, (r, _, _) in EXPECTED.items() if r}
        for writer, args in calls.items():
            r = await c.call_tool(writer, args)
            assert r.is_error and "unknown tool" in text_of(r).lower() and writer in text_of(r), text_of(r)
    assert not sandbox.requests(method="POST", path_prefix="/invoices")
    assert not sandbox.requests(method="DELETE")
    # Control: the same calls are valid, and a read-write server carries every one out.
    async with Client(build_server(settings_for(sandbox, INVOICE_MCP_CONFIRM="never"))) as c:
        for writer, args in calls.items():
            r = await c.call_tool(writer, args)
            assert not r.is_error, (writer, text_of(r))
    assert len(sandbox.requests(method="POST", path_prefix="/invoices")) == 3  # create, batch create, restore
    assert len(sandbox.requests(method="DELETE")) == 1  # archive


@pytest.fixture(scope="module")
def listed_tools() -> dict[str, dict[str, Any]]:
    """The public contract of each tool as ``tools/list`` shows it (one sandbox-free server, listed once)."""

    async def listing() -> list[Tool]:
        async with Client(build_server(load_settings(_OFFLINE_ENV))) as c:
            return (await c.list_tools()).tools

    tools = anyio.run(listing)
    return {
        t.name: {
            "title": t.title,
            "description": t.description,
            "input": t.input_schema,
            "output": t.output_schema,
            "annotations": t.annotations.model_dump(by_alias=True, exclude_none=True) if t.annotations else None,
        }
        for t in tools
    }


def _snapshot_text(contract: dict[str, Any]) -> str:
    return json.dumps(contract, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_matches_snapshot(name: str, listed_tools: dict[str, dict[str, Any]], update_snapshots: bool) -> None:
    """Tool schemas are the public contract: change them deliberately
    (``bash scripts/test tests/test_registry.py --update-snapshots``, then review the diff)."""
    path = SNAPSHOTS / f"{name}.json"
    current = _snapshot_text(listed_tools[name])
    if update_snapshots:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(current, encoding="utf-8")
    assert path.exists(), f"no snapshot for {name}: run pytest with --update-snapshots and commit {path.name}"
    assert json.loads(current) == json.loads(path.read_text(encoding="utf-8"))


def test_one_snapshot_per_tool(listed_tools: dict[str, dict[str, Any]]) -> None:
    assert set(listed_tools) == set(EXPECTED)
    assert {p.stem for p in SNAPSHOTS.glob("*.json")} == set(EXPECTED), "a snapshot without a tool (or the reverse)"


async def test_input_schemas_carry_bounds_enums_and_formats(sandbox: Sandbox) -> None:
    async with Client(build_server(settings_for(sandbox))) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    props = tools["list_invoices"].input_schema["properties"]
    assert props["limit"]["maximum"] == 100 and props["limit"]["default"] == 25
    assert props["status"]["type"] == "string" and "enum" not in props["status"]  # open: the API adds statuses
    assert "void" in props["status"]["description"] and "overdue" in props["status"]["description"]
    for name in ("created_at_start", "created_at_end", "due_date_start", "due_date_end"):
        assert props[name]["format"] == "date" and "Inclusive" in props[name]["description"]
    assert "UTC" in props["created_at_start"]["description"] and "RFC3339" in props["created_at_start"]["description"]
    assert "whole UTC day" in props["due_date_end"]["description"]
    assert props["min_days_past_due"]["minimum"] == 0 and props["unpaid"]["default"] is False
    create = tools["create_invoice"].input_schema
    item = create["$defs"]["LineItemIn"]["properties"]
    assert item["amount"]["exclusiveMinimum"] == 0 and item["quantity"]["minimum"] == 1
    assert create["properties"]["currency"]["const"] == "USD"
    assert create["properties"]["due_date"]["pattern"]
