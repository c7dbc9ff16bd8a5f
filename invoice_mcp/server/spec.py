"""What every tool module declares: a `ToolSpec` (input model, output model,
annotations, description and a typed handler in one place), and the small
helpers handlers share."""

from __future__ import annotations

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
    confirmation: Any = None
    """The resolver's answer: an ElicitationResult when the user was asked, else the resolver's own value."""
    apps: bool = False
    """The client renders MCP Apps views: a result may carry view-only extras in its `_meta`."""


InT = TypeVar("InT", bound=BaseModel)

Handler = Callable[[InT, "InvoiceService", ToolCall], Awaitable[CallToolResult]]


@dataclass(frozen=True)
class ToolSpec(Generic[InT]):
    name: str
    title: str
    description: str
    input: type[InT]
    output: type[BaseModel]
    annotations: ToolAnnotations
    handler: Handler[InT]
    confirm: Callable[[Deps], Callable[..., Any]] | None = None
    """Makes the resolver (SDK `Resolve`) that asks the user before the handler runs."""
    confirm_model: type[BaseModel] | None = None

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.read_only_hint)


def result(text: str, structured: BaseModel) -> CallToolResult:
    """Compact text for the model plus the validated structured payload, without null fields
    (an absent field and a null tell a model the same; the null costs tokens)."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json", exclude_none=True),
    )
