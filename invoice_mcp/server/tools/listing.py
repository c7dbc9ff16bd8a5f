"""list_invoices and summarize_invoices: the two ways to look at many invoices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.errors import safe_message
from invoice_mcp.server.inputs import Filters
from invoice_mcp.server.render import (
    DATA_KEY,
    DATA_NOTE,
    LIST_COLS,
    Cell,
    list_cells,
    list_item,
    list_line,
    usual_year,
)
from invoice_mcp.server.spec import READ_ONLY, ToolCall, ToolSpec, result
from invoice_mcp.text import clean, q2, quoted, usd

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService, LocalFilter, Tally


DEFAULT_LIMIT = 25


class ListInput(Filters):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=100, description="Invoices per chunk")
    cursor: str | None = Field(
        None, min_length=1, max_length=4000, description="next_cursor/prev_cursor (carries the filters)"
    )


class ListOutput(BaseModel):
    """Compact on purpose: some hosts show the model only this (as JSON), others only the text."""

    cols: list[str] | None = Field(None, description="Column names of each row")
    rows: list[list[Cell]] | None = None
    sum: float = Field(description="Sum of totals in this chunk, dollars")
    as_of: str
    next_cursor: str | None = None
    prev_cursor: str | None = None
    hint: str
    data: str


def _call(cursor: str, limit: int) -> str:
    extra = f", limit={limit}" if limit != DEFAULT_LIMIT else ""
    return f'list_invoices(cursor="{cursor}"{extra})'


def _filter_words(local: LocalFilter) -> str:
    words = []
    if local.unpaid and local.min_days_past_due is None:
        words.append("unpaid")
    if local.min_days_past_due is not None:
        words.append(f"unpaid and ≥{local.min_days_past_due} days past due")
    if local.text:
        words.append(f"text {quoted(local.text, 60)}")
    return ", ".join(words)


async def list_invoices(args: ListInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    listed = await svc.list_invoices(args.query(), args.limit, args.cursor)
    chunk, local = listed.chunk, listed.local
    as_of = local.as_of or svc.today()
    items = [list_item(i, listed.names, as_of) for i in chunk.rows]
    total = sum((i.total or Decimal("0") for i in chunk.rows), Decimal("0"))
    filt = _filter_words(local)
    year = usual_year(items, as_of.year)
    scan = ""
    if chunk.truncated:
        scan = (
            f"scanned {chunk.scanned} invoices (the per-call limit) before filling this chunk; "
            "more may match further on: continue with next"
        )
    lim = f", limit={args.limit}" if args.limit != DEFAULT_LIMIT else ""
    hint = f"more: list_invoices(cursor=next_cursor{lim})" if chunk.has_more and chunk.next_cursor else "end of list"
    if scan:
        hint = f"{scan} ({hint})"
    if chunk.prev_cursor and lim:
        hint += f"; back: list_invoices(cursor=prev_cursor{lim})"
    rows_in = call.settings.list_rows  # "both" unless the operator knows the host shows the model both views
    in_structured = rows_in != "text"  # with "text", the structured content is a short pointer to the text
    out = ListOutput(
        cols=LIST_COLS if in_structured else None,
        rows=[list_cells(it) for it in items] if in_structured else None,
        sum=float(q2(total)),
        as_of=as_of.isoformat(),
        next_cursor=chunk.next_cursor if in_structured else None,
        prev_cursor=chunk.prev_cursor if in_structured else None,
        hint=hint if in_structured else "rows and the next/prev calls are in the text content",
        data=DATA_KEY,
    )
    who = f" for {quoted(listed.customer, 60)}" if listed.customer else ""
    if items:
        head = [
            f"{len(items)} invoices{who}" + (f" ({filt})" if filt else "") + f", newest first, sum {usd(total)}; "
            f"dates are {year} unless a year is given; as of {as_of.isoformat()}. "
            "Rows: number «customer» status total created due",
        ]
    elif args.cursor:
        head = ["no more invoices" + (f" ({filt})" if filt else "")]
    else:
        head = ["no invoices match" + (f" ({filt})" if filt else "")]
    tail = []
    if scan:
        tail.append(scan)
    if chunk.has_more and chunk.next_cursor:
        tail.append("next: " + _call(chunk.next_cursor, args.limit))
    else:
        tail.append("end of list")
    if chunk.prev_cursor:
        tail.append("prev: " + _call(chunk.prev_cursor, args.limit))
    if any(it.named for it in items):
        tail.append(DATA_NOTE)
    if rows_in == "structured":  # the host shows the structured content too: say it once, there
        return result(f"{len(items)} invoices: rows and next/prev cursors in the structured content", out)
    lines = [*head, *(list_line(it, year) for it in items), *tail]
    return result("\n".join(lines), out)


SPEC_LIST = ToolSpec(
    name="list_invoices",
    title="List invoices",
    description=(
        "Invoices newest first, in chunks (archived hidden unless status=archived). unpaid, min_days_past_due "
        "and text are filtered server-side. Dollars. Continue with the exact next call given; totals: "
        "summarize_invoices."
    ),
    input=ListInput,
    output=ListOutput,
    annotations=READ_ONLY,
    handler=list_invoices,
)


class SummaryInput(Filters):
    max_invoices: int = Field(10_000, ge=1, le=1_000_000)
    top: int = Field(10, ge=1, le=50, description="Top debtors listed")
    balances: bool = Field(True, description="false: skip payments (faster), balance = totals")


class Bucket(BaseModel):
    count: int
    total: float
    balance: float | None = None


class CustomerDebt(BaseModel):
    customer_id: str
    customer: str | None = None
    count: int
    unpaid: float
    balance: float


class SummaryOutput(BaseModel):
    count: int
    total: float
    currency: str | None = None
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
    scope: str = Field(description="What is counted: archived, drafts, unknown statuses")


SCOPE = (
    "balance = what is still owed (total less succeeded payments); total and unpaid = as invoiced, before "
    "payments; archived invoices excluded unless status=archived; owed = every status except paid, void, cancelled, "
    "uncollectible and written-off; drafts (and archived) are counted apart, never owed; unknown statuses count "
    "as owed"
)


def _n(count: int) -> str:
    return f"({count} invoice{'' if count == 1 else 's'})"


def _bucket(t: Tally, balances: bool = True) -> Bucket:
    return Bucket(count=t.count, total=float(q2(t.total)), balance=float(q2(t.balance)) if balances else None)


async def summarize_invoices(args: SummaryInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    from invoice_mcp.service import AGING_BUCKETS
    from invoice_mcp.service.statuses import is_owed

    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        raise ToolError(f"as_of: {args.as_of!r} is not a real date (YYYY-MM-DD)") from None

    as_of = as_of or await svc.api_today()

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
        scope=SCOPE,
    )
    who = f" for {quoted(name, 60)}" if name else ""
    filt = _filter_words(args.query().local)

    def owed(t: Tally) -> str:
        return usd(t.balance) if t.balance == t.total else f"{usd(t.balance)} (of {usd(t.total)})"

    lines = [
        f"{s.count} invoices{who}{f' ({filt})' if filt else ''}, total {usd(s.total)} {currency or ''}".rstrip()
        + (f" (TRUNCATED at max_invoices={args.max_invoices}: partial figures)" if s.truncated else ""),
        "by status: "
        + ", ".join(f"{clean(k, 32)} {owed(b) if is_owed(k) else usd(b.total)} {_n(b.count)}" for k, b in statuses),
        f"owed: balance {owed(s.unpaid)} {_n(s.unpaid.count)}"
        + (f"; {s.with_payments} partly paid" if s.with_payments else "")
        + f"; by days past due as of {as_of}: "
        + ", ".join(
            f"{'not yet due' if k == 'current' else k + ' days'} {usd(s.aging[k].balance)} {_n(s.aging[k].count)}"
            for k in AGING_BUCKETS
        ),
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
                f"{quoted(names.get(cid), 40) if names.get(cid) else cid} {usd(b.balance)} {_n(b.count)}"
                for cid, b in top
            )
        )
    if s.apart:
        lines.append(
            "not owed, apart: " + ", ".join(f"{k} {usd(b.total)} {_n(b.count)}" for k, b in sorted(s.apart.items()))
        )
    if s.unknown_statuses:
        lines.append(
            "unknown statuses counted as owed: "
            + ", ".join(f"{quoted(k, 32)} {_n(n)}" for k, n in sorted(s.unknown_statuses.items()))
        )
    if s.undated_unpaid:
        lines.append(f"{s.undated_unpaid} owed invoices have no due date (not aged)")
    if s.invalid_totals:
        lines.append(f"{s.invalid_totals} invoices have an unusable total from the API (counted as $0.00)")
    lines.append(f"Counted: {SCOPE}.")
    if any("«" in ln for ln in lines):
        lines.append(DATA_NOTE)
    return result("\n".join(lines), out)


SPEC_SUMMARY = ToolSpec(
    name="summarize_invoices",
    title="Summarize invoices",
    description=(
        "Totals of all matching invoices in one call: balance owed (totals less payments) by status, top debtors "
        "and days past due. Filters as list_invoices; exact dollars. E.g. 'what does X still owe'."
    ),
    input=SummaryInput,
    output=SummaryOutput,
    annotations=READ_ONLY,
    handler=summarize_invoices,
)
