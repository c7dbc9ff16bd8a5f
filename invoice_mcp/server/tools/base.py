"""What every tool module declares, and the glue that turns it into an MCP tool.

A tool is a `ToolSpec`: input model, output model, annotations and handler in
one place. The MCP-facing function (its signature, hence the input schema) is
generated from the input model, so schema and validation cannot drift.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from invoice_mcp.api.errors import (
    AmbiguousWriteError,
    APIError,
    CredentialsError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    UpstreamError,
)

if TYPE_CHECKING:
    from invoice_mcp.server import AppState

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def write_annotations(*, destructive: bool, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=False, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=True
    )


Handler = Callable[[Any, Context[Any, Any], Any], Awaitable[CallToolResult]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input: type[BaseModel]
    output: type[BaseModel]
    annotations: ToolAnnotations
    handler: Handler
    confirm: Callable[..., Any] | None = None
    confirm_model: type[BaseModel] | None = None

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.read_only_hint)


def state(ctx: Context[Any, Any]) -> AppState:
    app: AppState = ctx.request_context.lifespan_context
    return app


def result(text: str, structured: BaseModel) -> CallToolResult:
    """Compact text for the model plus the validated structured payload."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json"),
    )


def describe_validation(tool: str, exc: ValidationError) -> str:
    """Pydantic's errors, reworded for a model: field, problem, fix; no URLs, no echoes of long values."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return f"invalid arguments for {tool}: " + "; ".join(parts) + ". Fix these fields and call again."


@contextmanager
def api_errors(subject: str = "") -> Iterator[None]:
    """Map API failures to messages the model can act on."""
    try:
        yield
    except AmbiguousWriteError:
        raise
    except NotFoundError as exc:
        what = subject or "object"
        raise ToolError(
            f"no {what} found ({exc.message}). Find it with list_invoices(invoice_number=…) "
            "or list_invoices(customer=…)"
        ) from None
    except InvalidRequestError as exc:
        if exc.code == "ambiguous_customer":
            raise ToolError(exc.message) from None
        if exc.validation_errors:
            fields = "; ".join(f"{k}: {v}" for k, v in exc.validation_errors.items())
            raise ToolError(f"the API rejected the request: {fields}. Fix these and call again.") from None
        raise ToolError(f"the API rejected the request: {exc.message}") from None
    except CredentialsError as exc:
        raise ToolError(
            f"credentials problem: {exc.message}. The server's administrator must fix "
            "AP_CLIENT_ID / AP_CLIENT_SECRET / AP_ENVIRONMENT; retrying will not help."
        ) from None
    except RateLimitedError as exc:
        raise ToolError(f"rate limited by the API; retry in {max(1, round(exc.retry_after))} s") from None
    except UpstreamError as exc:
        raise ToolError(f"the API is failing right now ({exc.message}); retry in a few seconds") from None
    except APIError as exc:
        raise ToolError(f"API error: {exc.message}") from None


def _schema_field(field: Any) -> Any:
    info = copy.copy(field)
    info.default = PydanticUndefined
    info.default_factory = None
    return info


def build_tool_fn(spec: ToolSpec) -> Callable[..., Awaitable[CallToolResult]]:
    """A function whose signature mirrors `spec.input`, for the SDK to derive the
    input schema and validate arguments; the body re-validates into the model so
    cross-field rules run too."""
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
                annotation=Annotated[ElicitationResult[spec.confirm_model], Resolve(spec.confirm)],  # type: ignore[name-defined]
            )
        )
    returns = Annotated[CallToolResult, spec.output]

    async def tool_fn(**kwargs: Any) -> CallToolResult:
        ctx = kwargs.pop("ctx")
        confirmation = kwargs.pop("confirmation", None)
        unknown = sorted(set(_raw_arguments(ctx)) - set(spec.input.model_fields))
        if unknown:
            # The SDK drops unknown arguments; a misspelt filter must not silently widen a query.
            names = ", ".join(repr(k[:40]) for k in unknown[:5])
            raise ToolError(
                f"invalid arguments for {spec.name}: unknown argument(s) {names}; "
                f"allowed: {', '.join(spec.input.model_fields)}. Fix these fields and call again."
            )
        try:
            args = spec.input.model_validate(kwargs)
        except ValidationError as exc:
            raise ToolError(describe_validation(spec.name, exc)) from None
        return await spec.handler(args, ctx, confirmation)

    tool_fn.__name__ = spec.name
    tool_fn.__doc__ = spec.description
    tool_fn.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    tool_fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    return tool_fn


def _raw_arguments(ctx: Context[Any, Any]) -> dict[str, Any]:
    """The arguments exactly as the client sent them (before the SDK dropped unknown keys)."""
    try:
        params = ctx.request_context.params
    except (AttributeError, ValueError):
        return {}
    raw = params.get("arguments") if params else None
    return raw if isinstance(raw, dict) else {}


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
    return out
