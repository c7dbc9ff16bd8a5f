"""How a write is approved: the policy (INVOICE_MCP_CONFIRM) against what the client can show,
the answer the user gives, and the attribution the journal records.

Confirmation is a step over the already-validated input: the SDK runs it (server/sdk_adapter.py)
before the handler, which receives the outcome in its `ToolCall`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import AcceptedElicitation, Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from invoice_mcp.server.spec import Confirmed, ToolCall
from invoice_mcp.server.state import actor

if TYPE_CHECKING:
    from invoice_mcp.api.settings import Settings
    from invoice_mcp.service.journal import Attribution


class Confirm(BaseModel):
    ok: bool = Field(description="Go ahead?")


HOW = {
    "user": "confirmed by the user",
    "client_approval": "not asked here (this client cannot show a confirmation; its own tool approval applies)",
    "policy": "not asked (server policy INVOICE_MCP_CONFIRM=never)",
    "preview": "preview",
}
"""How a write was approved, in the words of its result."""


def how_confirmed(settings: Settings, ctx: Context[Any, Any], action: str) -> Confirmed:
    """Whether the user is asked through the client ("user"), or why not. Raises when the
    policy demands a confirmation this client cannot show."""
    if settings.confirm == "never":
        return "policy"
    caps = ctx.client_capabilities
    if caps is not None and caps.elicitation is not None:
        return "user"
    if settings.confirm == "always":
        raise ToolError(
            f"not done: this server requires the user to confirm every {action}, and this client cannot "
            "show confirmation prompts. Use a client with MCP elicitation, or have the administrator set "
            "INVOICE_MCP_CONFIRM=auto."
        )
    return "client_approval"


def accepted(confirmation: Any) -> bool:
    """The confirmation step either decided without asking (its own Confirm) or asked the user (an
    ElicitationResult). Anything else (no answer at all) fails closed: nothing is written."""
    if isinstance(confirmation, Confirm):
        return confirmation.ok
    return isinstance(confirmation, AcceptedElicitation) and bool(getattr(confirmation.data, "ok", False))


def attribution(call: ToolCall, confirmed: str) -> Attribution:
    """Who the journal names for this write, and how it was approved."""
    from invoice_mcp.service.journal import Attribution

    return Attribution(actor=actor(call.ctx), confirmed=confirmed)
