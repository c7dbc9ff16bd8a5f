"""One test per touchpoint of server/sdk_adapter.py: if an `mcp` release changes how it
turns a function into a tool, these fail before a user notices."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from invoice_mcp.server.sdk_adapter import arguments_model, build_tool, compact_schema, describe_validation
from invoice_mcp.server.spec import READ_ONLY, ToolCall, ToolSpec, result

from ..conftest import settings_for

pytestmark = pytest.mark.anyio


VALIDATIONS: list[str] = []


class EchoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    word: str = Field(min_length=1, max_length=10, description="A word")
    times: int = Field(2, ge=1, le=5)
    shout: bool | None = None

    @model_validator(mode="after")
    def _counted(self) -> EchoIn:
        VALIDATIONS.append(self.word)
        return self


class EchoOut(BaseModel):
    text: str


async def _echo(args: EchoIn, svc: Any, call: ToolCall) -> CallToolResult:
    assert isinstance(args, EchoIn)  # the validated model itself, not loose arguments
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

    injected: list[object] = []

    def deps(ctx: Context[Any, Any]) -> tuple[Any, Any]:
        injected.append(ctx)
        return "svc", "settings"

    server: MCPServer[Any] = MCPServer("t", tools=[build_tool(SPEC, deps)])
    return server, injected


async def test_the_input_model_is_the_schema_and_the_only_validator() -> None:
    server, injected = _server()
    async with Client(server) as c:
        tool = (await c.list_tools()).tools[0]
        props = tool.input_schema["properties"]
        assert set(props) == {"word", "times", "shout"} and tool.input_schema["required"] == ["word"]
        assert props["times"]["minimum"] == 1 and props["times"]["maximum"] == 5 and props["times"]["default"] == 2
        assert "additionalProperties" not in tool.input_schema  # unknown names are refused, not advertised
        VALIDATIONS.clear()
        ok = await c.call_tool("echo", {"word": "hi", "shout": True})
        assert not ok.is_error and ok.structured_content == {"text": "HIHI"}
        assert VALIDATIONS == ["hi"]  # the model ran once: no second check of a synthesised signature
        assert len(injected) == 1  # the dependencies were injected once per call
        bad = await c.call_tool("echo", {"word": "hi", "times": 9})
        assert bad.is_error and "times" in bad.content[0].text  # type: ignore[union-attr]
        unknown = await c.call_tool("echo", {"word": "hi", "wrod": "x"})
        assert unknown.is_error and "wrod" in unknown.content[0].text  # type: ignore[union-attr]


def test_an_input_model_must_refuse_unknown_arguments() -> None:
    class Loose(BaseModel):
        word: str

    with pytest.raises(TypeError, match="forbid"):
        arguments_model(Loose)


def test_unknown_arguments_are_named_with_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as err:
        EchoIn.model_validate({"word": "a", "wrod": "b", "times": 0})
    msg = describe_validation("echo", err.value, list(EchoIn.model_fields))
    assert msg.startswith("invalid arguments for echo: unknown argument(s) 'wrod'; allowed: word, times, shout")
    assert "times: " in msg and msg.endswith("Fix these fields and call again.")


def test_a_long_list_of_problems_is_cut_short() -> None:
    class Many(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[int]

    with pytest.raises(ValidationError) as err:
        Many.model_validate({"items": ["x"] * 200})
    msg = describe_validation("many", err.value)
    assert "and 190 more" in msg and len(msg) < 1000


async def test_unknown_arguments_are_refused_by_the_server_with_the_fix(sandbox: Any) -> None:
    from invoice_mcp.server import build_server

    async with Client(build_server(settings_for(sandbox), tools=(SPEC,))) as c:
        r = await c.call_tool("echo", {"word": "hi", "wrod": "x"})
    text = r.content[0].text  # type: ignore[union-attr]
    assert r.is_error and "unknown argument(s) 'wrod'; allowed: word, times, shout" in text, text


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

    spec = ToolSpec(
        name="broken",
        title="Broken",
        description="d",
        input=EchoIn,
        output=StrictOut,
        annotations=READ_ONLY,
        handler=_broken,
    )
    async with Client(build_server(settings_for(sandbox), tools=(spec,))) as c:
        r = await c.call_tool("broken", {"word": "hi"})
    text = r.content[0].text  # type: ignore[union-attr]
    assert r.is_error and "invalid arguments" not in text and "bug" in text
