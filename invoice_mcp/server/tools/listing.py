"""list_invoices and summarize_invoices: the two ways to look at many invoices."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.errors import safe_message
from invoice_mcp.server.inputs import Filters
from invoice_mcp.server.render import DATA_NOTE, InvoiceRow, line, row
from invoice_mcp.server.spec import READ_ONLY, ToolCall, ToolSpec, result
from invoice_mcp.text import clean, q2, quoted, usd

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService, Tally


class ListInput(Filters):
    limit: int = Field(25, ge=1, le=100, description="Invoices per chunk")
    cursor: str | None = Field(None, min_length=1, max_length=4000, description="next_cursor/prev_cursor from a call")


class ListOutput(BaseModel):
    invoices: list[InvoiceRow]
    count: int
    chunk_total: float = Field(description="Sum of totals in this chunk, dollars")
    next_cursor: str | None
    prev_cursor: str | None
    has_more: bool


async def list_invoices(args: ListInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    listed = await svc.list_invoices(args.query(), args.limit, args.cursor)
    chunk = listed.chunk
    rows = [row(i, listed.names) for i in chunk.rows]
    total = sum((i.total or Decimal("0") for i in chunk.rows), Decimal("0"))
    out = ListOutput(
        invoices=rows,
        count=len(rows),
        chunk_total=float(q2(total)),
        next_cursor=chunk.next_cursor,
        prev_cursor=chunk.prev_cursor,
        has_more=chunk.has_more,
    )
    more = "more: call again with cursor=next_cursor" if chunk.has_more else "end of list"
    header = f"{len(rows)} invoices, total {usd(total)}; {more}"
    if not rows:
        header = "no invoices match" if not args.cursor else "no more invoices"
    note = [DATA_NOTE] if any(r.customer for r in rows) else []
    return result("\n".join([header, *(line(r) for r in rows), *note]), out)


SPEC_LIST = ToolSpec(
    name="list_invoices",
    title="List invoices",
    description=(
        "List invoices newest first in chunks (default 25). Filter by status, customer (name) or customer_id, "
        "invoice_number, created/due date ranges (YYYY-MM-DD or RFC3339). Totals are dollars. For totals over "
        "many invoices use summarize_invoices instead of paging."
    ),
    input=ListInput,
    output=ListOutput,
    annotations=READ_ONLY,
    handler=list_invoices,
)


class SummaryInput(Filters):
    as_of: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="Aging reference date (default today)")
    max_invoices: int = Field(10_000, ge=1, le=1_000_000, description="Stop after this many")
    top: int = Field(10, ge=1, le=50, description="Customers listed in by_customer")
    balances: bool = Field(True, description="false: skip payments (faster), balance = totals")


class Bucket(BaseModel):
    count: int
    total: float
    balance: float | None = None


class CustomerDebt(BaseModel):
    customer_id: str
    customer: str | None
    count: int
    unpaid: float
    balance: float


class SummaryOutput(BaseModel):
    count: int
    total: float
    currency: str | None
    by_status: dict[str, Bucket]
    unpaid: Bucket = Field(description="Owed invoices")
    by_customer: list[CustomerDebt] = Field(description="Top by balance")
    aging: dict[str, Bucket] = Field(description="Owed by days past due")
    apart: dict[str, Bucket] = Field(description="Drafts, archived")
    unknown_statuses: dict[str, int] = Field(description="Counted as owed")
    with_payments: int = Field(description="Owed invoices partly paid")
    balances: bool
    as_of: str
    truncated: bool
    customer: str | None = Field(None, description="Resolved customer name, when filtered by customer")


def _bucket(t: Tally, balances: bool = True) -> Bucket:
    return Bucket(count=t.count, total=float(q2(t.total)), balance=float(q2(t.balance)) if balances else None)


async def summarize_invoices(args: SummaryInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    from invoice_mcp.service import AGING_BUCKETS
    from invoice_mcp.service.statuses import is_owed

    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC).date()
    except ValueError:
        raise ToolError(f"as_of: {args.as_of!r} is not a real date (YYYY-MM-DD)") from None

    async def progress(done: int, msg: str) -> None:
        await call.ctx.report_progress(done, None, msg)

    s, name = await svc.summarize(
        args.query(), as_of=as_of, max_invoices=args.max_invoices, progress=progress, balances=args.balances
    )
    top = sorted(s.unpaid_by_customer.items(), key=lambda kv: (kv[1].balance, kv[1].total), reverse=True)[: args.top]
    names = await svc.customer_names({cid for cid, _ in top if cid != "?"})
    currency = ",".join(sorted(s.currency)) or None
    statuses = sorted(s.by_status.items())
    out = SummaryOutput(
        count=s.count,
        total=float(q2(s.total)),
        currency=currency,
        by_status={k: _bucket(b, is_owed(k)) for k, b in statuses},
        unpaid=_bucket(s.unpaid),
        by_customer=[
            CustomerDebt(
                customer_id=cid,
                customer=clean(names.get(cid), 80) or None,
                count=b.count,
                unpaid=float(q2(b.total)),
                balance=float(q2(b.balance)),
            )
            for cid, b in top
        ],
        aging={k: _bucket(s.aging[k]) for k in AGING_BUCKETS},
        apart={k: _bucket(b, False) for k, b in sorted(s.apart.items())},
        unknown_statuses={clean(k, 32): n for k, n in sorted(s.unknown_statuses.items())},
        with_payments=s.with_payments,
        balances=args.balances and s.payments_unavailable is None,
        as_of=as_of.isoformat(),
        truncated=s.truncated,
        customer=clean(name, 80) if name else None,
    )
    scope = f" for {quoted(name, 60)}" if name else ""

    def owed(t: Tally) -> str:
        return usd(t.balance) if t.balance == t.total else f"{usd(t.balance)} (of {usd(t.total)})"

    lines = [
        f"{s.count} invoices{scope}, total {usd(s.total)} {currency or ''}".rstrip()
        + (f" (TRUNCATED at max_invoices={args.max_invoices}: partial figures)" if s.truncated else ""),
        "by status: "
        + ", ".join(f"{clean(k, 32)} {b.count} {owed(b) if is_owed(k) else usd(b.total)}" for k, b in statuses),
        f"owed {s.unpaid.count} invoices, balance {owed(s.unpaid)}"
        + (f"; {s.with_payments} partly paid" if s.with_payments else "")
        + f"; aging as of {as_of}: "
        + ", ".join(f"{k} {usd(s.aging[k].balance)}" for k in AGING_BUCKETS),
    ]
    if not args.balances:
        lines.append("balances not computed (balances=false): owed figures are invoice totals")
    elif s.payments_unavailable:
        lines.append(
            f"balances unavailable (payments could not be read: {safe_message(s.payments_unavailable)}): "
            "owed figures are invoice totals"
        )
    if top and not name:
        lines.append(
            "top balances: "
            + "; ".join(
                f"{quoted(names.get(cid), 40) if names.get(cid) else cid} {usd(b.balance)} ({b.count})"
                for cid, b in top
            )
        )
    if s.apart:
        lines.append(
            "not owed, apart: " + ", ".join(f"{k} {b.count} {usd(b.total)}" for k, b in sorted(s.apart.items()))
        )
    if s.unknown_statuses:
        lines.append(
            "unknown statuses counted as owed: "
            + ", ".join(f"{quoted(k, 32)} {n}" for k, n in sorted(s.unknown_statuses.items()))
        )
    if s.undated_unpaid:
        lines.append(f"{s.undated_unpaid} owed invoices have no due date (not aged)")
    if any("«" in ln for ln in lines):
        lines.append(DATA_NOTE)
    return result("\n".join(lines), out)


SPEC_SUMMARY = ToolSpec(
    name="summarize_invoices",
    title="Summarize invoices",
    description=(
        "Totals over every matching invoice in one call (walks all pages server-side): count, total, by status, "
        "balance still owed (totals less succeeded payments) overall, by status, top customers, aging (days past "
        "due). Paid/void/canceled/written-off are not owed; drafts, archived apart. Same filters as list_invoices. "
        "Dollars, exact. Use for 'how much is overdue', 'what does X still owe'."
    ),
    input=SummaryInput,
    output=SummaryOutput,
    annotations=READ_ONLY,
    handler=summarize_invoices,
)
