"""Every place this server leans on how the `mcp` SDK (2.3.x) turns a function into
a tool. The SDK derives a tool's input schema and argument validation from a function
signature; this module hands it the tool's input model instead, so the model is the only
validator and the schema's only source. Each touchpoint has a test in
tests/server/test_sdk_adapter.py, and pyproject bounds `mcp` below 2.4.

Touchpoints:
1. `build_tool`: the SDK's `Tool` for a spec, made by `Tool.from_function` from a function
   `(args, ctx, [prepared, confirmation])`, whose argument model is then replaced by the input
   model (`arguments_model`: it validates the whole arguments object once, unknown names
   included, and hands the function the model as `args`). Tools reach the server through
   `MCPServer(tools=…)`.
2. Confirmed writes: two resolvers (SDK `Resolve`) over the validated `args`: `prepared` looks
   the subject up once, `confirmation` asks the user about it; both reach the handler.
3. `compact_schema`: applied to the generated schemas in `list_tools` (a public override), to
   drop what costs tokens and tells a model nothing.
4. `describe_validation`: the SDK reports a failed argument check as `ToolError` whose
   `__cause__` is the model's `ValidationError`; it is reworded for a model.
5. `advertise_apps_in_both_eras`: the SDK advertises extensions only where the wire has an
   `extensions` field (2026-07-28); 2025-11-25 clients find MCP Apps under `experimental`.
6. `InvoiceMCPServer._handle_list_tools` (server/app.py) answers tools/list with the request
   context, to add `_meta.ui` for clients that negotiated Apps only.
7. `one_initialize`: a server middleware (`MCPServer(middleware=…)`) that refuses a second
   `initialize` on a connection; the SDK would otherwise replace its capabilities.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, cast

from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.apps import EXTENSION_ID
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import INVALID_REQUEST, CallToolResult, ServerCapabilities
from pydantic import BaseModel, ValidationError, create_model

from invoice_mcp.server.apps import client_negotiated_apps
from invoice_mcp.server.confirm import Confirm, accepted, how_confirmed
from invoice_mcp.server.errors import tool_errors
from invoice_mcp.server.spec import Confirmed, Deps, ToolCall, ToolSpec


def advertise_apps_in_both_eras(server: MCPServer[Any]) -> None:
    """Copy the MCP Apps extension entry to `experimental` in the handshake-era capabilities
    (the 2025-11-25 `initialize` answer has no `extensions` field and drops it)."""
    low = server._lowlevel_server
    original = low.get_capabilities

    def get_capabilities(
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> ServerCapabilities:
        caps = original(notification_options, experimental_capabilities, extensions, protocol_version=protocol_version)
        ui = (caps.extensions or {}).get(EXTENSION_ID)
        if protocol_version is None and ui is not None:
            caps = caps.model_copy(update={"experimental": {**(caps.experimental or {}), EXTENSION_ID: ui}})
        return caps

    low.get_capabilities = get_capabilities  # type: ignore[method-assign]


MAX_REPORTED = 10
"""Validation problems named in one message: enough to fix a call, never an echo of a huge one."""


def describe_validation(tool: str, exc: ValidationError, allowed: Sequence[str] = ()) -> str:
    """Pydantic's errors, reworded for a model: field, problem, fix; no URLs, no echoes of long
    values. Unknown arguments are named together with the allowed ones (a misspelt filter must
    not silently widen a query)."""
    unknown: list[str] = []
    parts: list[str] = []
    for err in exc.errors():
        loc = [str(p)[:40] for p in err["loc"]]
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            unknown.append(repr(loc[0]))
            continue
        parts.append(f"{'.'.join(loc) or 'arguments'}: {err['msg'].removeprefix('Value error, ')}")
    if unknown:
        listed = f"unknown argument(s) {', '.join(unknown[:5])}" + (" …" if len(unknown) > 5 else "")
        parts.insert(0, listed + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
    more = f"; and {len(parts) - MAX_REPORTED} more" if len(parts) > MAX_REPORTED else ""
    return f"invalid arguments for {tool}: {'; '.join(parts[:MAX_REPORTED])}{more}. Fix these fields and call again."


class _WholeArguments(ArgModelBase):
    """Hands the tool function the validated model itself, as `args`."""

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"args": self}


def arguments_model(model: type[BaseModel]) -> type[ArgModelBase]:
    """The input model as the SDK's argument model: its fields, bounds, validators and
    `extra="forbid"`, checked once over the whole arguments object."""
    if model.model_config.get("extra") != "forbid":
        raise TypeError(f"{model.__name__} must forbid extra fields: an unknown argument must not be dropped")
    bases = cast(tuple[type[ArgModelBase], ...], (model, _WholeArguments))
    return create_model(model.__name__, __base__=bases, __module__=model.__module__)


def input_schema(arguments: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema. Unknown arguments are refused with the allowed names; the top-level
    `additionalProperties: false` would say it again in every tools/list."""
    schema = arguments.model_json_schema(by_alias=True)
    schema.pop("additionalProperties", None)
    return schema


@dataclass(frozen=True)
class Prepared:
    """The outcome of a confirmed write's first step: how it is approved and what it is about."""

    how: Confirmed
    subject: Any


def _confirmation_steps(spec: ToolSpec[Any], deps: Deps) -> tuple[Any, Any]:
    """The two resolvers of a confirmed write, over the validated `args`: `prepare` (policy, then
    the subject, looked up once per call) and `ask` (the user's answer, when the user is asked)."""
    confirm = spec.confirm
    assert confirm is not None

    async def prepare(args: Any, ctx: Context[Any, Any]) -> Prepared:
        svc, settings = deps(ctx)
        how: Confirmed = "preview" if getattr(args, "dry_run", False) else how_confirmed(settings, ctx, confirm.action)
        with tool_errors():
            return Prepared(how, await confirm.prepare(args, svc, how == "user"))

    async def ask(args: Any, prepared: Prepared, ctx: Context[Any, Any]) -> Confirm | Elicit[Confirm]:
        if prepared.how != "user":
            return Confirm(ok=True)
        svc, _ = deps(ctx)
        with tool_errors():
            return Elicit(await confirm.question(args, prepared.subject, svc), Confirm)

    prepare.__qualname__ = f"{spec.name}.prepare"  # the wire key of the resolver's round-trip state
    ask.__qualname__ = f"{spec.name}.confirm"
    prepare.__annotations__ = {"args": Any, "ctx": Context, "return": Prepared}
    ask.__annotations__ = {
        "args": Any,
        "prepared": Annotated[Prepared, Resolve(prepare)],
        "ctx": Context,
        "return": Confirm | Elicit[Confirm],
    }
    return prepare, ask


def _tool_function(spec: ToolSpec[Any], deps: Deps) -> Callable[..., Awaitable[CallToolResult]]:
    """`(args, ctx, [prepared, confirmation])`: injects the service and settings, runs the handler
    and maps its failures to tool errors."""
    annotations: dict[str, Any] = {"args": spec.input, "ctx": Context}
    if spec.confirm is not None:
        prepare, ask = _confirmation_steps(spec, deps)
        annotations["prepared"] = Annotated[Prepared, Resolve(prepare)]
        annotations["confirmation"] = Annotated[ElicitationResult[Confirm], Resolve(ask)]
    returns = Annotated[CallToolResult, spec.output]

    async def tool_fn(args: Any, ctx: Any, prepared: Prepared | None = None, confirmation: Any = None) -> Any:
        svc, settings = deps(ctx)
        call = ToolCall(
            ctx=ctx,
            settings=settings,
            apps=client_negotiated_apps(ctx),
            confirmed=prepared.how if prepared is not None else None,
            accepted=accepted(confirmation),
            subject=prepared.subject if prepared is not None else None,
        )
        with tool_errors():
            return await spec.handler(args, svc, call)

    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a) for n, a in annotations.items()]
    tool_fn.__name__ = spec.name
    tool_fn.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    tool_fn.__annotations__ = annotations | {"return": returns}
    return tool_fn


def build_tool(spec: ToolSpec[Any], deps: Deps) -> Tool:
    """The SDK's tool for `spec`, validating with (and described by) `spec.input` alone."""
    tool = Tool.from_function(
        _tool_function(spec, deps),
        name=spec.name,
        title=spec.title,
        description=spec.description,
        annotations=spec.annotations,
    )
    arguments = arguments_model(spec.input)
    tool.fn_metadata.arg_model = arguments
    tool.parameters = input_schema(arguments)
    return tool


def compact_schema(schema: Any, *, inputs: bool = True) -> Any:
    """Drop what costs tokens and tells a model nothing: auto titles; in input
    schemas the `anyOf [X, null]` wrapper of optional fields and string length
    bounds (validation still enforces both). Output schemas keep their nulls (clients validate against them)
    as `type: [X, "null"]`, and lose descriptions and `required` (every field is
    always present)."""
    if isinstance(schema, list):
        return [compact_schema(s, inputs=inputs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs"):  # maps of names to schemas: names are not keywords
            out[key] = {name: compact_schema(sub, inputs=inputs) for name, sub in value.items()}
        elif key != "title":
            out[key] = compact_schema(value, inputs=inputs)
    any_of = out.get("anyOf")
    nullable = isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of
    if inputs:
        if nullable:
            assert isinstance(any_of, list)
            inner = next(s for s in any_of if s != {"type": "null"})
            del out["anyOf"]
            out = {**inner, **out}
        if out.get("default", 0) is None:
            del out["default"]
        if out.get("type") == "string":  # length bounds are enforced by validation; in the schema they cost tokens
            out.pop("minLength", None)
            out.pop("maxLength", None)
        return out
    for key in ("description", "default", "required"):
        out.pop(key, None)
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    if nullable:
        assert isinstance(any_of, list)
        inner = next(s for s in any_of if s != {"type": "null"})
        if isinstance(inner.get("type"), str):
            del out["anyOf"]
            out = {**inner, **out, "type": [inner["type"], "null"]}
            if "enum" in inner:  # a null must pass the enum too
                out["enum"] = [*inner["enum"], None]
    return out


def shallow_output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An output schema that names every top-level field and its JSON type, and says only
    "object" or "array" below that. Still honoured by every result (it is looser, never
    stricter), at a third of the tokens: nested row shapes are described in the text and the
    tool description, where a model reads them."""

    def kind(sub: Any) -> Any:
        if not isinstance(sub, dict):
            return sub
        if "$ref" in sub or "properties" in sub or "additionalProperties" in sub:
            return {"type": "object"}
        if "items" in sub or sub.get("type") == "array" or "prefixItems" in sub:
            return {"type": "array"}
        if isinstance(sub.get("type"), list):  # results omit null fields, so a field is never null
            sub = {**sub, "type": [t for t in sub["type"] if t != "null"]}
            if len(sub["type"]) == 1:
                sub["type"] = sub["type"][0]
            sub.pop("enum", None)
        if "enum" in sub and "type" in sub:  # the values are named in the description and the text
            return {"type": sub["type"]}
        any_of = sub.get("anyOf")
        if isinstance(any_of, list):
            types = [kind(a).get("type") for a in any_of if isinstance(a, dict) and a != {"type": "null"}]
            flat = [t for t in types if isinstance(t, str)]
            if len(flat) == len(types):
                return {"type": flat[0] if len(flat) == 1 else flat}
        return sub

    out = {k: v for k, v in schema.items() if k != "$defs"}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: kind(sub) for name, sub in out["properties"].items()}
    return out


async def one_initialize(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """A connection's capabilities are fixed by its first `initialize`. A second one would replace
    them (say, claim no elicitation so a create no longer asks the user): it is refused, and the
    session keeps what it declared first."""
    if ctx.method == "initialize" and ctx.session.client_params is not None:
        raise MCPError(
            code=INVALID_REQUEST,
            message="this session is already initialized; its capabilities are fixed. Open a new session instead.",
        )
    return await call_next(ctx)
