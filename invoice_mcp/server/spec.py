"""What every tool module declares: a `ToolSpec` (input model, output model,
annotations, description and a typed handler in one place), made by the `tool` decorator
over its handler, and the small helpers handlers share."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

if TYPE_CHECKING:
    from invoice_mcp.api.settings import Settings
    from invoice_mcp.service import InvoiceService

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def write_annotations(*, destructive: bool, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=False, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=True
    )


WRITE = write_annotations(destructive=False, idempotent=False)
"""A write that adds something on every call: a second call is a second invoice."""
IDEMPOTENT_WRITE = write_annotations(destructive=False, idempotent=True)
"""A write that, repeated, changes nothing more (a restore; a batch resumed by its id)."""
DESTRUCTIVE_WRITE = write_annotations(destructive=True, idempotent=True)
"""A write that takes something away (an archive: hidden, unpayable until restored); repeated, it
changes nothing more."""


Confirmed = Literal["user", "client_approval", "policy", "preview"]
"""How a write was approved: by the user through the client's confirmation; assumed from the
client's own tool approval (it cannot show one); skipped by the server's policy; or not a write (preview)."""

VIEW_META = "io.github.invoice-mcp/view"
"""Result `_meta` key for what only an MCP Apps view shows (hosts do not give `_meta` to the model)."""

Deps = Callable[[Context[Any, Any]], "tuple[InvoiceService, Settings]"]
"""Gives a request its service and the settings (the registry's injection point)."""


@dataclass(frozen=True)
class ToolCall:
    """What a handler may need besides its arguments and the service: the request
    context, the server's settings and, for confirmed writes, the user's answer."""

    ctx: Context[Any, Any]
    settings: Settings
    apps: bool = False
    """The client renders MCP Apps views: a result may carry view-only extras in its `_meta`."""
    confirmed: Confirmed | None = None
    """For a confirmed write: how it was approved (or "preview" for a dry run)."""
    accepted: bool = False
    """For a confirmed write: whether it may go ahead (the user said yes, or was not asked)."""
    subject: Any = None
    """For a confirmed write: what its `Confirmation.prepare` looked up, once per call."""

    @property
    def how(self) -> Confirmed:
        """How this confirmed write was approved (set for every tool with a `Confirmation`)."""
        if self.confirmed is None:
            raise RuntimeError("how: this tool has no Confirmation")
        return self.confirmed


InT = TypeVar("InT", bound=BaseModel)

Handler = Callable[[InT, "InvoiceService", ToolCall], Awaitable[CallToolResult]]


@dataclass(frozen=True)
class Confirmation(Generic[InT]):
    """How a write is confirmed, as steps over its validated input. An input with `dry_run`
    set is a preview: nothing is asked."""

    action: str
    """The write in a refusal's words ("invoice creation", "archive")."""
    prepare: Callable[[InT, InvoiceService, bool], Awaitable[Any]]
    """Looks up and checks what the write is about, before anyone is asked (the flag: whether the
    user will be); the handler receives it as `call.subject`, so it is looked up once."""
    question: Callable[[InT, Any, InvoiceService], Awaitable[str]]
    """What the user is asked, given the input and what `prepare` returned."""


@dataclass(frozen=True)
class ToolSpec(Generic[InT]):
    name: str
    title: str
    description: str
    input: type[InT]
    output: type[BaseModel]
    annotations: ToolAnnotations
    handler: Handler[InT]
    confirm: Confirmation[InT] | None = None

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.read_only_hint)


def tool(
    *, title: str, output: type[BaseModel], annotations: ToolAnnotations, confirm: Confirmation[Any] | None = None
) -> Callable[[Handler[InT]], ToolSpec[InT]]:
    """Declares the handler below as a tool, as the SDK's own decorator does: the tool is named
    after the function, its description for the model is the docstring (its lines joined by one
    space) and its input model is the type of the first parameter."""

    def declare(handler: Handler[InT]) -> ToolSpec[InT]:
        doc = inspect.getdoc(handler)
        if not doc:
            raise TypeError(f"{handler.__qualname__}: a tool's docstring is its description; it has none")
        return ToolSpec(
            name=handler.__name__,
            title=title,
            description=" ".join(doc.split()),
            input=_first_parameter_type(handler),
            output=output,
            annotations=annotations,
            handler=handler,
            confirm=confirm,
        )

    return declare


def _first_parameter_type(handler: Handler[InT]) -> type[InT]:
    """The class named by the handler's first parameter, resolved in its module (annotations are
    strings there); a tool input is always a plain class name."""
    hint = next(iter(inspect.signature(handler).parameters.values())).annotation
    model = getattr(handler, "__globals__", {}).get(hint, hint) if isinstance(hint, str) else hint
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{handler.__qualname__}: the first parameter must be annotated with the input model")
    return model  # type: ignore[return-value]


def result(text: str, structured: BaseModel) -> CallToolResult:
    """Compact text for the model plus the validated structured payload, without null fields
    (an absent field and a null tell a model the same; the null costs tokens)."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json", exclude_none=True),
    )
