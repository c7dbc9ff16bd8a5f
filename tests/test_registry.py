"""Registry invariants: names, titles, explicit hints, read-only derivation, schema snapshot, and that a
tool needs nothing but its module, its registry line and its snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, Tool
from pydantic import BaseModel, Field

from invoice_mcp.api.settings import load_settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.server.inputs import Strict
from invoice_mcp.server.registry import TOOLS, select_tools
from invoice_mcp.server.spec import IDEMPOTENT_WRITE, READ_ONLY, ToolCall, result, tool

from .conftest import settings_for, text_of

pytestmark = pytest.mark.anyio
SNAPSHOTS = Path(__file__).parent / "snapshots" / "tools"
# Listing tools needs settings but no API: nothing is called.
_OFFLINE_ENV = {"AP_CLIENT_ID": "id", "AP_CLIENT_SECRET": "secret", "AP_BASE_URL": "https://api.invalid"}


def _snapshot(name: str) -> dict[str, Any]:
    return json.loads((SNAPSHOTS / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


EXPECTED = {
    p.stem: (a["readOnlyHint"], a["destructiveHint"], a["idempotentHint"])
    for p in sorted(SNAPSHOTS.glob("*.json"))
    for a in [_snapshot(p.stem)["annotations"]]
}
"""name: (read_only, destructive, idempotent) as each tool's snapshot records them; the snapshot is
a tool's only declaration outside its module and its registry line."""
NAMES = [t.name for t in TOOLS]


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


@pytest.mark.parametrize("name", NAMES)
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
    assert list(listed_tools) == NAMES  # in the registry's order
    assert set(EXPECTED) == set(NAMES), "a snapshot without a tool (or the reverse)"


def test_bundle_manifest_lists_the_registry_tools(update_snapshots: bool) -> None:
    """The bundle manifest's tool list is written from the registry, with the snapshots
    (``--update-snapshots``): a new tool needs no edit there by hand."""
    from .test_server_json import first_sentence

    path = Path(__file__).parents[1] / "bundle" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    declared = [{"name": t.name, "description": first_sentence(t.description)} for t in TOOLS]
    if update_snapshots and manifest["tools"] != declared:
        manifest["tools"] = declared
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert manifest["tools"] == declared, "run pytest tests/test_registry.py --update-snapshots and commit the manifest"


class PingIn(Strict):
    word: str = Field(min_length=1, max_length=10)


class PingOut(BaseModel):
    text: str


@tool(title="Ping", output=PingOut, annotations=READ_ONLY)
async def ping_throwaway(args: PingIn, svc: Any, call: ToolCall) -> CallToolResult:
    """Answers pong,
    in two lines."""
    return result(f"pong {args.word}", PingOut(text=args.word))


@tool(title="Poke", output=PingOut, annotations=IDEMPOTENT_WRITE)
async def poke_throwaway(args: PingIn, svc: Any, call: ToolCall) -> CallToolResult:
    """Answers pong, as a write."""
    return result(f"pong {args.word}", PingOut(text=args.word))


PING, POKE = ping_throwaway, poke_throwaway


def test_the_tool_decorator_reads_name_description_and_input_from_the_handler() -> None:
    assert (PING.name, PING.title, PING.input, PING.output) == ("ping_throwaway", "Ping", PingIn, PingOut)
    assert PING.description == "Answers pong, in two lines."
    assert PING.read_only and not POKE.read_only and POKE.annotations.idempotent_hint
    for spec in TOOLS:  # every description is one line of single spaces, as the model reads it
        assert spec.description and spec.description == " ".join(spec.description.split())


def test_the_tool_decorator_refuses_a_handler_it_cannot_describe() -> None:
    async def undocumented(args: PingIn, svc: Any, call: ToolCall) -> CallToolResult:
        return result("", PingOut(text=""))

    async def untyped(args, svc, call):  # type: ignore[no-untyped-def]
        """Has no input model."""

    declare = tool(title="X", output=PingOut, annotations=READ_ONLY)
    with pytest.raises(TypeError, match="docstring is its description"):
        declare(undocumented)
    with pytest.raises(TypeError, match="annotated with the input model"):
        declare(untyped)


async def test_a_new_tool_is_its_module_and_a_registry_line() -> None:
    """Nothing else wires a tool: the server lists it, validates its arguments with its model, serves
    it, and read-only mode keeps or drops it by its annotations."""
    tools = (*TOOLS, PING, POKE)
    async with Client(build_server(load_settings(_OFFLINE_ENV), tools=tools)) as c:
        listed = [t.name for t in (await c.list_tools()).tools]
        ok = await c.call_tool("ping_throwaway", {"word": "hi"})
        bad = await c.call_tool("poke_throwaway", {"word": "hi", "wrod": "x"})
    assert listed == [t.name for t in tools]
    assert not ok.is_error and ok.structured_content == {"text": "hi"}
    assert bad.is_error and "unknown argument(s) 'wrod'; allowed: word" in text_of(bad)
    async with Client(build_server(load_settings(_OFFLINE_ENV), read_only=True, tools=tools)) as c:
        read_only = {t.name for t in (await c.list_tools()).tools}
    assert "ping_throwaway" in read_only and "poke_throwaway" not in read_only
    assert read_only == {t.name for t in tools if t.read_only}


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
