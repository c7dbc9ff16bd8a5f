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


def result(text: str, structured: BaseModel) -> CallToolResult:
    """Compact text for the model plus the validated structured payload, without null fields
    (an absent field and a null tell a model the same; the null costs tokens)."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json", exclude_none=True),
    )
