"""recent_activity: what this server wrote, from the journal ("what did you do today, and who approved it?").

Read-only and compact: one line per write with its invoice number, newest first, paged with the
exact next call. Arguments are never shown (they stay in the journal, redacted); customer names
come from the cached directory and are marked as data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field, WithJsonSchema, field_validator

from invoice_mcp.server.errors import tool_errors
from invoice_mcp.server.inputs import Strict, real_date
from invoice_mcp.server.spec import READ_ONLY, ToolCall, result, tool
from invoice_mcp.text import clean, quoted

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService
    from invoice_mcp.service.journal import Entry

DEFAULT_DAYS = 7


class ActivityInput(Strict):
    since: str | None = Field(None, description="YYYY-MM-DD (default 7 days ago)")
    until: str | None = Field(None, description="YYYY-MM-DD, exclusive")
    tool: str | None = None
    customer: str | None = Field(None, description="id or name")
    outcome: str | None = Field(None, description="created, archived, failed…")
    cursor: str | None = None
    limit: Annotated[int, WithJsonSchema({"type": "integer", "maximum": 100})] = Field(25, ge=1, le=100)

    @field_validator("since", "until")
    @classmethod
    def _day(cls, v: str | None) -> str | None:
        if v is not None and len(v) != 10:
            raise ValueError("dates are YYYY-MM-DD")
        return real_date(v)

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, v: str | None) -> str | None:
        if v is not None and not v.isdigit():
            raise ValueError("cursor is the value next_cursor returned")
        return v


class ActivityOutput(BaseModel):
    count: int
    cols: list[str]
    rows: list[list[Any]]
    next_cursor: str | None = None
    hint: str


def _day(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _line(e: Entry, names: dict[str, str]) -> str:
    who = clean(e.actor, 60)
    ref = clean(e.invoice_number, 40) or clean(e.invoice_id, 64) or "-"
    customer = quoted(names.get(e.customer_id or "", ""), 40) if e.customer_id else ""
    total = f" ${e.total}" if e.total else ""
    batch = f" [batch {clean(e.batch_id, 64)} row {e.batch_row}]" if e.batch_id else ""
    return (
        f"{e.started_at[:16].replace('T', ' ')} {e.tool} {e.outcome} {ref} {customer}{total} by {quoted(who, 60)}, "
        f"confirmed: {e.confirmed}{batch}"
    ).replace("  ", " ")


@tool(title="Recent activity", output=ActivityOutput, annotations=READ_ONLY)
async def recent_activity(args: ActivityInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """What this server wrote (creates, archives, restores): when, who, how confirmed, invoice numbers."""
    from invoice_mcp.service.journal import Filter

    if svc.journal is None:
        raise ToolError("no journal: this server keeps no state store")
    with tool_errors():
        today = await svc.api_today()
        since = (
            _day(args.since)
            if args.since
            else datetime.combine(today, datetime.min.time(), UTC) - timedelta(days=DEFAULT_DAYS)
        )
        customer_id = (await svc.customers.resolve(args.customer)).id if args.customer else None
        entries = await svc.journal.entries(
            Filter(
                since=since,
                until=_day(args.until) if args.until else None,
                tool=args.tool,
                customer_id=customer_id,
                outcome=args.outcome,
            ),
            limit=args.limit + 1,
            before_id=int(args.cursor) if args.cursor else None,
        )
        page, more = entries[: args.limit], len(entries) > args.limit
        names = await svc.customer_names({e.customer_id for e in page if e.customer_id})
    nxt = str(page[-1].id) if more and page else None
    hint = f'next: recent_activity(cursor="{nxt}", same filters)' if nxt else "no more entries"
    head = f"{len(page)} writes since {since.date().isoformat()}, newest first (journal of this server):"
    lines = [head, *(_line(e, names) for e in page), hint if nxt else "(end)"]
    out = ActivityOutput(
        count=len(page),
        cols=["at", "tool", "outcome", "invoice", "customer", "total", "actor", "confirmed", "batch", "row"],
        rows=[
            [
                e.started_at[:19] + "Z",
                e.tool,
                e.outcome,
                clean(e.invoice_number, 40) or e.invoice_id,
                names.get(e.customer_id or "") or e.customer_id,
                e.total,
                clean(e.actor, 60),
                e.confirmed,
                e.batch_id,
                e.batch_row,
            ]
            for e in page
        ],
        next_cursor=nxt,
        hint=hint,
    )
    return result("\n".join(lines), out)
