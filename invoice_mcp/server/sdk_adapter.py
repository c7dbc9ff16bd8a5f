"""Every place this server leans on how the `mcp` SDK (2.3.x) turns a function into
a tool. The SDK derives a tool's input schema and argument validation from a
function signature and offers no public way to hand it a model instead, so this
module builds that signature from the tool's input model. Each touchpoint has a
test in tests/server/test_sdk_adapter.py, and pyproject bounds `mcp` below 2.4.

Touchpoints:
1. `build_tool_fn`: a keyword-only signature mirroring the input model (fields,
   defaults, constraints), `ctx: Context`, and for confirmed writes a
   `confirmation` parameter filled by `Resolve(spec.confirm)`.
2. `compact_schema`: applied to the SDK's generated schemas in `list_tools` (a
   public override), to drop what costs tokens and tells a model nothing.
3. `describe_validation`: the SDK's own argument check raises `ToolError` whose
   `__cause__` is pydantic's `ValidationError`; it is reworded for a model.
4. `advertise_apps_in_both_eras`: the SDK advertises extensions only where the wire has an
   `extensions` field (2026-07-28); 2025-11-25 clients find MCP Apps under `experimental`.
5. `InvoiceMCPServer._handle_list_tools` (server/app.py) answers tools/list with the request
   context, to add `_meta.ui` for clients that negotiated Apps only.
6. `one_initialize`: a server middleware (`MCPServer(middleware=…)`) that refuses a second
   `initialize` on a connection; the SDK would otherwise replace its capabilities.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.apps import EXTENSION_ID
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import INVALID_REQUEST, CallToolResult, ServerCapabilities
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from invoice_mcp.server.apps import client_negotiated_apps
from invoice_mcp.server.errors import tool_errors
from invoice_mcp.server.spec import Deps, ToolCall, ToolSpec


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


def describe_validation(tool: str, exc: ValidationError) -> str:
    """Pydantic's errors, reworded for a model: field, problem, fix; no URLs, no echoes of long values."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return f"invalid arguments for {tool}: " + "; ".join(parts) + ". Fix these fields and call again."


def unknown_arguments(spec: ToolSpec[Any], arguments: dict[str, Any]) -> str | None:
    """The SDK drops unknown arguments; a misspelt filter must not silently widen a query."""
    unknown = sorted(set(arguments) - set(spec.input.model_fields))
    if not unknown:
        return None
    names = ", ".join(repr(k[:40]) for k in unknown[:5])
    return (
        f"invalid arguments for {spec.name}: unknown argument(s) {names}; "
        f"allowed: {', '.join(spec.input.model_fields)}. Fix these fields and call again."
    )


def _schema_field(field: Any) -> Any:
    info = copy.copy(field)
    info.default = PydanticUndefined
    info.default_factory = None
    return info


def build_tool_fn(spec: ToolSpec[Any], deps: Deps) -> Callable[..., Awaitable[CallToolResult]]:
    """A function whose signature mirrors `spec.input`, for the SDK to derive the input
    schema and validate arguments. The body re-validates into the model (so cross-field
    rules run), injects the service and settings, and maps failures to tool errors."""
    params = []
    for name, f in spec.input.model_fields.items():
        default = inspect.Parameter.empty if f.is_required() else f.get_default(call_default_factory=True)
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[f.annotation, _schema_field(f)],
                default=default,
            )
        )
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    if spec.confirm is not None and spec.confirm_model is not None:
        params.append(
            inspect.Parameter(
                "confirmation",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[ElicitationResult[spec.confirm_model], Resolve(spec.confirm(deps))],  # type: ignore[name-defined]
            )
        )
    returns = Annotated[CallToolResult, spec.output]

    async def tool_fn(**kwargs: Any) -> CallToolResult:
        ctx = kwargs.pop("ctx")
        confirmation = kwargs.pop("confirmation", None)
        try:
            args = spec.input.model_validate(kwargs)
        except ValidationError as exc:
            raise ToolError(describe_validation(spec.name, exc)) from None
        svc, settings = deps(ctx)
        call = ToolCall(ctx=ctx, settings=settings, confirmation=confirmation, apps=client_negotiated_apps(ctx))
        with tool_errors():
            return await spec.handler(args, svc, call)

    tool_fn.__name__ = spec.name
    tool_fn.__doc__ = spec.description
    tool_fn.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    tool_fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    return tool_fn


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
