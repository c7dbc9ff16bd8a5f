"""One test per touchpoint of server/sdk_adapter.py: if an `mcp` release changes how it
turns a function into a tool, these fail before a user notices."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.sdk_adapter import build_tool_fn, compact_schema, unknown_arguments
from invoice_mcp.server.spec import READ_ONLY, ToolCall, ToolSpec, result

from ..conftest import settings_for

pytestmark = pytest.mark.anyio


class EchoIn(BaseModel):
    word: str = Field(min_length=1, max_length=10, description="A word")
    times: int = Field(2, ge=1, le=5)
    shout: bool | None = None


class EchoOut(BaseModel):
    text: str


async def _echo(args: EchoIn, svc: Any, call: ToolCall) -> CallToolResult:
    text = (args.word.upper() if args.shout else args.word) * args.times
    return result(text, EchoOut(text=text))


SPEC = ToolSpec(
    name="echo",
    title="Echo",
    description="Echo a word",
    input=EchoIn,
    output=EchoOut,
    annotations=READ_ONLY,
    handler=_echo,
)


def _server() -> Any:
    from mcp.server import MCPServer

    server: MCPServer[Any] = MCPServer("t")
    injected: list[object] = []

    def deps(ctx: Context[Any, Any]) -> tuple[Any, Any]:
        injected.append(ctx)
        return "svc", "settings"

    server.add_tool(build_tool_fn(SPEC, deps), name=SPEC.name, description=SPEC.description)
    return server, injected


async def test_signature_gives_the_models_schema_and_validation() -> None:
    server, injected = _server()
    async with Client(server) as c:
        tool = (await c.list_tools()).tools[0]
        props = tool.input_schema["properties"]
        assert set(props) == {"word", "times", "shout"} and tool.input_schema["required"] == ["word"]
        assert props["times"]["minimum"] == 1 and props["times"]["maximum"] == 5 and props["times"]["default"] == 2
        ok = await c.call_tool("echo", {"word": "hi", "shout": True})
        assert not ok.is_error and ok.structured_content == {"text": "HIHI"}
        assert len(injected) == 1  # the dependencies were injected once per call
        bad = await c.call_tool("echo", {"word": "hi", "times": 9})
        assert bad.is_error and "times" in bad.content[0].text  # type: ignore[union-attr]


def test_unknown_arguments_are_named() -> None:
    msg = unknown_arguments(SPEC, {"word": "a", "wrod": "b"})
    assert msg is not None and "'wrod'" in msg and "allowed: word, times, shout" in msg
    assert unknown_arguments(SPEC, {"word": "a"}) is None


def test_compact_schema_drops_noise_and_keeps_nullable_enums_valid() -> None:
    schema = {
        "title": "X",
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}], "default": None, "title": "A"},
            "b": {"anyOf": [{"enum": ["x", "y"], "type": "string"}, {"type": "null"}], "description": "d"},
        },
        "required": ["b"],
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"enum": ["x", "y"], "type": "string", "description": "d"}},
        "required": ["b"],
    }
    out = compact_schema(schema, inputs=False)
    assert out["properties"]["b"] == {"enum": ["x", "y", None], "type": ["string", "null"]}
    assert "required" not in out


async def test_served_schemas_are_compacted_through_the_public_list_tools(sandbox: Any) -> None:
    from invoice_mcp.server import build_server

    async with Client(build_server(settings_for(sandbox))) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    listing = tools["list_invoices"]
    assert "title" not in listing.input_schema and "title" not in str(listing.output_schema)
    assert listing.input_schema["properties"]["cursor"]["type"] == "string"  # anyOf [string, null] unwrapped


async def test_confirmation_resolver_is_filled_by_the_sdk(sandbox: Any) -> None:
    """Resolve(spec.confirm(deps)) runs before the handler and hands it the answer; with
    a client that cannot ask, the write proceeds and says so."""
    from invoice_mcp.server import build_server

    cid = sandbox.customers()[0]["id"]
    async with Client(build_server(settings_for(sandbox))) as c:
        r = await c.call_tool(
            "create_invoice",
            {"customer_id": cid, "line_items": [{"description": "Seat", "amount": 10, "quantity": 1}]},
        )
    assert not r.is_error and r.structured_content is not None
    assert r.structured_content["outcome"] == "created" and r.structured_content["confirmed"] == "client_approval"


class StrictOut(BaseModel):
    text: str
    extra: str


async def _broken(args: EchoIn, svc: Any, call: ToolCall) -> CallToolResult:
    return result("x", EchoOut(text="x"))  # not a StrictOut: the SDK rejects it


async def test_a_result_that_fails_its_own_schema_is_not_blamed_on_the_arguments(sandbox: Any) -> None:
    """The SDK reports output validation as a ToolError caused by a ValidationError, like a bad
    argument; the server must not tell the model to fix its arguments."""
    from invoice_mcp.server import build_server

    server = build_server(settings_for(sandbox))
    spec = ToolSpec(
        name="broken",
        title="Broken",
        description="d",
        input=EchoIn,
        output=StrictOut,
        annotations=READ_ONLY,
        handler=_broken,
    )
    server.specs["broken"] = spec
    server.add_tool(build_tool_fn(spec, lambda ctx: ("svc", "settings")), name="broken", description="d")  # type: ignore[arg-type,return-value]
    async with Client(server) as c:
        r = await c.call_tool("broken", {"word": "hi"})
    text = r.content[0].text  # type: ignore[union-attr]
    assert r.is_error and "invalid arguments" not in text and "bug" in text
