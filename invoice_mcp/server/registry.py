"""The tool registry: one list of tools, and filters derived from their annotations
(read-only mode keeps exactly the tools annotated read-only)."""

from __future__ import annotations

from typing import Any

from invoice_mcp.server.spec import ToolSpec
from invoice_mcp.server.tools.activity import SPEC_ACTIVITY
from invoice_mcp.server.tools.batch_changes import SPEC_ARCHIVE_BATCH, SPEC_RESTORE_BATCH
from invoice_mcp.server.tools.batches import SPEC_CREATE_BATCH
from invoice_mcp.server.tools.customers import SPEC_FIND
from invoice_mcp.server.tools.detail import SPEC_GET
from invoice_mcp.server.tools.links import SPEC_PAYMENT_LINK, SPEC_PDF_LINK
from invoice_mcp.server.tools.listing import SPEC_LIST, SPEC_SUMMARY
from invoice_mcp.server.tools.payments import SPEC_PAYMENTS
from invoice_mcp.server.tools.writes import SPEC_ARCHIVE, SPEC_CREATE, SPEC_RESTORE

TOOLS: tuple[ToolSpec[Any], ...] = (
    SPEC_LIST,
    SPEC_GET,
    SPEC_SUMMARY,
    SPEC_FIND,
    SPEC_PAYMENTS,
    SPEC_CREATE,
    SPEC_CREATE_BATCH,
    SPEC_ARCHIVE,
    SPEC_RESTORE,
    SPEC_ARCHIVE_BATCH,
    SPEC_RESTORE_BATCH,
    SPEC_PAYMENT_LINK,
    SPEC_PDF_LINK,
    SPEC_ACTIVITY,
)


def select_tools(*, read_only: bool, tools: tuple[ToolSpec[Any], ...] = TOOLS) -> tuple[ToolSpec[Any], ...]:
    return tuple(t for t in tools if t.read_only or not read_only)
