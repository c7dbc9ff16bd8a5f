"""list_invoices and summarize_invoices: the two ways to look at many invoices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.errors import safe_message
from invoice_mcp.server.inputs import InvoiceQuery
from invoice_mcp.server.render import (
    DATA_KEY,
    DATA_NOTE,
    LIST_COLS,
    Cell,
    ListItem,
    compact_money,
    list_cells,
    list_item,
    list_line,
    list_table,
    usual_year,
)
from invoice_mcp.server.spec import READ_ONLY, VIEW_META, ToolCall, result, tool
from invoice_mcp.service.balances import PaymentIssues
from invoice_mcp.text import clean, money_text, quoted, to_cents

if TYPE_CHECKING:
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service import Chunk, InvoiceService, Listed, Tally
    from invoice_mcp.service.summaries import Figures, Summary


DEFAULT_LIMIT = 25
ZERO = Decimal("0")


class ListInput(InvoiceQuery):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=100, description="Invoices per chunk")
    cursor: str | None = Field(
        None, min_length=1, max_length=4000, description="next_cursor/prev_cursor (carries the filters)"
    )


class ListOutput(BaseModel):
    """Compact on purpose: some hosts show the model only this (as JSON), others only the text."""

    cols: list[str] | None = Field(None, description="Column names of each row")
    customers: list[str] | None = Field(None, description="Rows' customer = position here")
    rows: list[list[Cell]] | None = None
    sum: float = Field(description="Sum of totals in this chunk (its currency)")
    owed: float | None = Field(None, description="Sum of balances still owed")
    balances: dict[str, Cell] | None = Field(None, description="Owed, where not the row's total")
    currency: str | None = None
    as_of: str
    next_cursor: str | None = None
    prev_cursor: str | None = None
    hint: str
    data: str
    scope: str | None = None
    """What was looked at (empty, filtered or partial chunks)."""


TEXT_FIELDS = "memo, line item descriptions and customer name"


def _scope(query: InvoiceQuery, scanned: int, truncated: bool) -> str:
    """What an empty, filtered or partial chunk looked at, so a zero can be trusted (or not)."""
    parts = []
    if query.text:
        parts.append(f"text searched in {TEXT_FIELDS} (case-insensitive)")
    if query.server_side:
        parts.append(f"{scanned} invoices scanned in this call" + (" (the per-call limit)" if truncated else ""))
    status = query.status
    if status == "archived":
        parts.append("archived invoices only")
    else:
        parts.append("archived invoices excluded (status=archived lists them)")
        parts.append(
            "drafts only" if status == "draft" else "drafts excluded" if status or query.unpaid else "drafts included"
        )
    return "; ".join(parts)


def _call(cursor: str, limit: int) -> str:
    extra = f", limit={limit}" if limit != DEFAULT_LIMIT else ""
    return f'list_invoices(cursor="{cursor}"{extra})'


def _filter_words(query: InvoiceQuery) -> str:
    """The server-side filters in force, in words for the header."""
    words = []
    if query.unpaid and query.min_days_past_due is None:
        words.append("unpaid")
    if query.min_days_past_due is not None:
        words.append(f"unpaid and ≥{query.min_days_past_due} days past due")
    if query.text:
        words.append(f"text {quoted(query.text, 60)}")
    if query.failed_payment:
        words.append("with a failed payment attempt")
    return ", ".join(words)


def _sums(items: list[ListItem]) -> tuple[str, dict[str, Decimal], dict[str, Decimal | None]]:
    """Totals and balances owed per currency (never added across currencies), and the chunk's
    main currency (most rows; USD on a tie)."""
    totals: dict[str, Decimal] = {}
    owed: dict[str, Decimal | None] = {}
    rows: dict[str, int] = {}
    for it in items:
        rows[it.currency] = rows.get(it.currency, 0) + 1
        totals[it.currency] = totals.get(it.currency, ZERO) + (it.total or ZERO)
        prev = owed.get(it.currency, ZERO)
        if it.owed:
            owed[it.currency] = None if prev is None or it.balance is None else prev + it.balance
        else:
            owed.setdefault(it.currency, prev)
    main = max(rows, key=lambda c: (rows[c], c == "USD", c)) if rows else "USD"
    order = sorted(totals, key=lambda c: (c != main, c))
    return main, {c: totals[c] for c in order}, {c: owed[c] for c in order}


def _amounts(per: Mapping[str, Decimal | None], *, code: bool = True) -> str:
    """`$1,000.00 USD + 700.00 EUR`: one figure per currency (`code=False`: no USD after dollars)."""
    return " + ".join(money_text(v, c) + (" USD" if c == "USD" and code else "") for c, v in per.items())


def _partly(it: ListItem) -> bool:
    return it.owed and it.balance != it.total


@dataclass(frozen=True)
class _Chunked:
    """One chunk as the list shows it: its rows and sums, and what the words around them need."""

    listed: Listed
    items: list[ListItem]
    main: str
    totals: dict[str, Decimal]
    owed: dict[str, Decimal | None]
    as_of: date
    limit: int
    continued: bool
    """The call passed a cursor."""

    @property
    def chunk(self) -> Chunk[Invoice]:
        return self.listed.chunk

    @property
    def scan_note(self) -> str:
        if not self.chunk.truncated:
            return ""
        return (
            f"scanned {self.chunk.scanned} invoices (the per-call limit) before filling this chunk; "
            "more may match further on: continue with next"
        )


def _chunked(listed: Listed, limit: int, continued: bool, today: date) -> _Chunked:
    as_of = listed.query.as_of_date or today
    bals = listed.balances or [None] * len(listed.chunk.rows)
    items = [list_item(i, listed.names, as_of, b) for i, b in zip(listed.chunk.rows, bals, strict=True)]
    main, totals, owed = _sums(items)
    return _Chunked(listed, items, main, totals, owed, as_of, limit, continued)


def _hint(c: _Chunked) -> str:
    """How to go on, for the structured content."""
    lim = f", limit={c.limit}" if c.limit != DEFAULT_LIMIT else ""
    chunk = c.chunk
    hint = f"more: list_invoices(cursor=next_cursor{lim})" if chunk.has_more and chunk.next_cursor else "end of list"
    if c.scan_note:
        hint = f"{c.scan_note} ({hint})"
    if chunk.prev_cursor and lim:
        hint += f"; back: list_invoices(cursor=prev_cursor{lim})"
    return hint


def _list_output(c: _Chunked, in_structured: bool, scope: str | None) -> ListOutput:
    """The structured content; with rows kept to the text, a short pointer to it."""
    main_owed = c.owed.get(c.main, ZERO)
    items, main, chunk = c.items, c.main, c.chunk
    customers, rows = list_table(items, main)
    return ListOutput(
        cols=LIST_COLS if in_structured else None,
        customers=customers if in_structured else None,
        rows=rows if in_structured else None,
        sum=compact_money(c.totals.get(main, ZERO)) or 0,
        owed=None if main_owed is None or not in_structured else compact_money(main_owed),
        balances={it.ref: list_cells(replace(it, total=it.balance), main)[3] for it in items if _partly(it)} or None
        if in_structured
        else None,
        currency=(main or None) if in_structured else None,
        as_of=c.as_of.isoformat(),
        next_cursor=chunk.next_cursor if in_structured else None,
        prev_cursor=chunk.prev_cursor if in_structured else None,
        hint=_hint(c) if in_structured else "rows and the next/prev calls are in the text content",
        data=DATA_KEY,
        scope=scope if in_structured else None,
    )


def _list_scope(c: _Chunked) -> str | None:
    """What was looked at, for empty, filtered or partial chunks (None otherwise)."""
    listed, chunk = c.listed, c.chunk
    if c.items and not listed.query.server_side and not chunk.truncated:
        return None
    scope = _scope(listed.query, chunk.scanned, chunk.truncated)
    if listed.query.failed_payment:
        scope += "; failed attempts: every failed payment tied to its invoice via /payments?invoice_id="
        if listed.failed_unattributed:
            scope += (
                f", except {listed.failed_unattributed} not yet attributed (per-call budget); "
                "the same call again continues"
            )
    return scope


def _list_head(c: _Chunked, scope: str | None, year: int) -> list[str]:
    listed, items = c.listed, c.items
    filt = _filter_words(listed.query)
    with_filters = f" ({filt})" if filt else ""
    who = f" for {quoted(listed.customer, 60)}" if listed.customer else ""
    if items:
        whole = not c.continued and not c.chunk.has_more  # this chunk is the whole answer: N of N
        count = f"{len(items)} of {len(items)}" if whole else f"{len(items)}"
        head = [
            f"{count} invoices{who}{with_filters}, newest first, sum {_amounts(c.totals)}"
            f", owed {_amounts(c.owed, code=False)}; dates are {year} unless a year is given; "
            f"as of {c.as_of.isoformat()}. Rows: number «customer» status total created due",
        ]
    else:
        head = [("no more invoices" if c.continued else "no invoices match") + with_filters]
    if scope:
        head.append(f"looked at: {scope}")
    return head


def _list_tail(c: _Chunked) -> list[str]:
    listed, chunk = c.listed, c.chunk
    tail = []
    if listed.payments_unavailable is not None:
        tail.append(
            f"balances of partly paid rows unknown (payments could not be read: "
            f"{safe_message(listed.payments_unavailable)})"
        )
    issues = PaymentIssues()
    for b in listed.balances:
        if b is not None:
            issues.merge(b.issues)
    tail.extend(f"payments: {p}" for p in issues.phrases(c.main))
    if c.scan_note:
        tail.append(c.scan_note)
    if chunk.has_more and chunk.next_cursor:
        tail.append("next: " + _call(chunk.next_cursor, c.limit))
    else:
        tail.append("end of list")
    if chunk.prev_cursor:
        tail.append("prev: " + _call(chunk.prev_cursor, c.limit))
    if any(it.named for it in c.items):
        tail.append(DATA_NOTE)
    return tail


@tool(title="List invoices", output=ListOutput, annotations=READ_ONLY)
async def list_invoices(args: ListInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Invoices newest first, in chunks (archived hidden unless status=archived). unpaid, min_days_past_due and text
    are filtered server-side. Dollars. Continue with the exact next call given; totals: summarize_invoices."""
    listed = await svc.list_invoices(args, args.limit, args.cursor)
    c = _chunked(listed, args.limit, bool(args.cursor), svc.today())
    rows_in = call.settings.list_rows  # "both" unless the operator knows the host shows the model both views
    in_structured = rows_in != "text"  # with "text", the structured content is a short pointer to the text
    scope = _list_scope(c)
    out = _list_output(c, in_structured, scope)
    if rows_in == "structured":  # the host shows the structured content too: say it once, there
        return result(f"{len(c.items)} invoices: rows and next/prev cursors in the structured content", out)
    year = usual_year(c.items, c.as_of.year)
    lines = [*_list_head(c, scope, year), *(list_line(it, year) for it in c.items), *_list_tail(c)]
    res = result("\n".join(lines), out)
    if call.apps and not in_structured:  # the table view needs the rows the operator kept out of structured content
        customers, rows = list_table(c.items)
        res.meta = {
            VIEW_META: {
                "cols": LIST_COLS,
                "customers": customers,
                "rows": rows,
                "next_cursor": c.chunk.next_cursor,
                "prev_cursor": c.chunk.prev_cursor,
            }
        }
    return res


class SummaryInput(InvoiceQuery):
    max_invoices: int = Field(10_000, ge=1, le=1_000_000)
    top: int = Field(10, ge=1, le=50, description="Top debtors listed")
    rank: Literal["balance", "past_due"] = Field("balance", description="Order of by_customer")
    balances: bool = Field(True, description="false: skip payments (faster), balance = totals")


class Bucket(BaseModel):
    count: int
    total: float
    balance: float | None = None
    past_due: float | None = None
    """Balance of those past due on as_of (owed buckets only)."""
    past_due_count: int | None = None


class CustomerDebt(BaseModel):
    customer_id: str
    customer: str | None = None
    count: int
    unpaid: float
    balance: float
    past_due: float
    past_due_count: int


class SummaryOutput(BaseModel):
    count: int
    total: float
    currency: str | None = Field(None, description="Of every money figure here")
    by_status: dict[str, Bucket]
    unpaid: Bucket = Field(description="Owed invoices")
    past_due: Bucket = Field(description="Owed invoices due before as_of")
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
    other_currencies: dict[str, dict[str, Any]] | None = Field(None, description="Same figures, per other currency")
    payment_issues: list[str] | None = Field(None, description="Payments not counted, and why")


SCOPE = (
    "balance = what is still owed (total less succeeded payments); total and unpaid = as invoiced, before "
    "payments; archived invoices excluded unless status=archived; owed = every status except paid, void, cancelled, "
    "uncollectible and written-off; drafts (and archived) are counted apart, never owed; unknown statuses count "
    "as owed; each currency is counted apart"
)


def _count(count: int) -> str:
    """`(1 invoice)`, `(3 invoices)`."""
    return f"({count} invoice{'' if count == 1 else 's'})"


def _bucket(t: Tally, balances: bool = True, *, late: bool = False) -> Bucket:
    return Bucket(
        count=t.count,
        total=float(to_cents(t.total)),
        balance=float(to_cents(t.balance)) if balances else None,
        past_due=float(to_cents(t.late_balance)) if late else None,
        past_due_count=t.late_count if late else None,
    )


def _late(t: Tally) -> Bucket:
    """The past-due part of `t` as a bucket of its own (totals are not split by lateness: balance)."""
    return Bucket(count=t.late_count, total=float(to_cents(t.late_balance)), balance=float(to_cents(t.late_balance)))


def _top(f: Figures, n: int, rank: str = "balance") -> list[tuple[str, Tally]]:
    def key(kv: tuple[str, Tally]) -> tuple[Decimal, Decimal, Decimal]:
        t = kv[1]
        return (t.late_balance, t.balance, t.total) if rank == "past_due" else (t.balance, t.late_balance, t.total)

    return sorted(f.unpaid_by_customer.items(), key=key, reverse=True)[:n]


def _figures(f: Figures, top: list[tuple[str, Tally]], names: dict[str, str]) -> dict[str, Any]:
    """The money fields of the output for one currency (the top level, or one of other_currencies)."""
    from invoice_mcp.service import AGING_BUCKETS
    from invoice_mcp.service.statuses import is_owed

    return {
        "count": f.count,
        "total": float(to_cents(f.total)),
        "by_status": {k: _bucket(b, is_owed(k), late=is_owed(k)) for k, b in sorted(f.by_status.items())},
        "unpaid": _bucket(f.unpaid, late=True),
        "past_due": _late(f.unpaid),
        "by_customer": [
            CustomerDebt(
                customer_id=cid,
                customer=clean(names.get(cid), 80) or None,
                count=b.count,
                unpaid=float(to_cents(b.total)),
                balance=float(to_cents(b.balance)),
                past_due=float(to_cents(b.late_balance)),
                past_due_count=b.late_count,
            )
            for cid, b in top
        ],
        "aging": {k: _bucket(f.aging[k]) for k in AGING_BUCKETS},
        "apart": {k: _bucket(b, False) for k, b in sorted(f.drafts_and_archived.items())},
        "with_payments": f.with_payments,
    }


def _figure_lines(
    f: Figures,
    code: str,
    top: list[tuple[str, Tally]],
    names: dict[str, str],
    as_of: date,
    *,
    lead: str,
    who: bool,
    rank: str = "balance",
) -> list[str]:
    from invoice_mcp.service import AGING_BUCKETS
    from invoice_mcp.service.statuses import is_owed

    def m(v: Decimal) -> str:
        return money_text(v, code)

    def owed(t: Tally) -> str:
        return m(t.balance) if t.balance == t.total else f"{m(t.balance)} (of {m(t.total)})"

    def late(t: Tally) -> str:
        return f", {m(t.late_balance)} past due {_count(t.late_count)}" if t.late_count else ""

    statuses = sorted(f.by_status.items())
    lines = [
        lead,
        "by status: "
        + ", ".join(
            f"{clean(k, 32)} {owed(b) if is_owed(k) else m(b.total)} {_count(b.count)}{late(b) if is_owed(k) else ''}"
            for k, b in statuses
        ),
        f"owed: balance {owed(f.unpaid)} {_count(f.unpaid.count)}"
        + (f"; {f.with_payments} partly paid" if f.with_payments else "")
        + f"; past due (due before {as_of}): {m(f.unpaid.late_balance)} {_count(f.unpaid.late_count)}"
        + f"; by days past due as of {as_of}: "
        + ", ".join(
            f"{'not yet due' if k == 'current' else k + ' days'} {m(f.aging[k].balance)} {_count(f.aging[k].count)}"
            for k in AGING_BUCKETS
        ),
    ]
    if top and who:
        lines.append(
            ("top past due: " if rank == "past_due" else "top balances: ")
            + "; ".join(
                f"{quoted(names.get(cid), 40) if names.get(cid) else cid} {m(b.balance)} {_count(b.count)}"
                + (f", {m(b.late_balance)} past due" if b.late_count else "")
                for cid, b in top
            )
        )
    if f.drafts_and_archived:
        aside = ", ".join(f"{k} {m(b.total)} {_count(b.count)}" for k, b in sorted(f.drafts_and_archived.items()))
        lines.append(f"not owed, apart: {aside}")
    return lines


def _code(currency: str) -> str:
    return currency or "currency not given"


def _summary_issues(s: Summary, balances: bool, code: str) -> list[str]:
    issues = s.payment_issues.phrases(code) if balances else []
    if s.failed_unattributed:
        issues.append(
            f"PARTIAL: {s.failed_unattributed} failed payments not yet tied to an invoice (per-call budget); "
            "the same call again continues"
        )
    return issues


def _summary_output(
    s: Summary,
    tops: dict[str, list[tuple[str, Tally]]],
    names: dict[str, str],
    name: str | None,
    as_of: date,
    *,
    balances: bool,
    issues: list[str],
) -> SummaryOutput:
    code, main = s.main
    others = {c: f for c, f in s.by_currency.items() if c != code}
    return SummaryOutput(
        **_figures(main, tops.get(code, []), names),
        currency=code or None,
        unknown_statuses={clean(k, 32): n for k, n in sorted(s.unknown_statuses.items())},
        balances=balances,
        as_of=as_of.isoformat(),
        truncated=s.truncated,
        customer=clean(name, 80) if name else None,
        scope=SCOPE,
        other_currencies={
            _code(c): SummaryCurrency.model_validate(_figures(f, tops[c], names)).model_dump(mode="json")
            for c, f in others.items()
        }
        or None,
        payment_issues=issues or None,
    )


def _summary_lines(
    s: Summary,
    args: SummaryInput,
    tops: dict[str, list[tuple[str, Tally]]],
    names: dict[str, str],
    name: str | None,
    as_of: date,
    issues: list[str],
) -> list[str]:
    code, main = s.main
    others = {c: f for c, f in s.by_currency.items() if c != code}
    who = f" for {quoted(name, 60)}" if name else ""
    filt = _filter_words(args)
    more = f"; {sum(f.count for f in others.values())} more in other currencies, counted apart below" if others else ""
    lead = (
        f"{main.count} invoices{who}{f' ({filt})' if filt else ''}, total {money_text(main.total, code)} "
        f"{code or '(currency not given)'}{more}"
        + (f" (TRUNCATED at max_invoices={args.max_invoices}: partial figures)" if s.truncated else "")
    )
    lines = _figure_lines(main, code, tops.get(code, []), names, as_of, lead=lead, who=not name, rank=args.rank)
    if not args.balances:
        lines.append("balances not computed (balances=false): owed figures are invoice totals")
    elif s.payments_unavailable:
        lines.append(
            f"balances unavailable (payments could not be read: {safe_message(s.payments_unavailable)}): "
            "owed figures are invoice totals"
        )
    for c, f in others.items():
        lead = f"{_code(c)}: {f.count} invoices, total {money_text(f.total, c)}" + (f" {c}" if c in ("", "USD") else "")
        lines.extend(_figure_lines(f, c, tops[c], names, as_of, lead=lead, who=not name, rank=args.rank))
    if s.unknown_statuses:
        lines.append(
            "unknown statuses counted as owed: "
            + ", ".join(f"{quoted(k, 32)} {_count(n)}" for k, n in sorted(s.unknown_statuses.items()))
        )
    if s.undated_unpaid:
        lines.append(f"{s.undated_unpaid} owed invoices have no due date (not aged)")
    if s.invalid_totals:
        lines.append(f"{s.invalid_totals} invoices have an unusable total from the API (counted as $0.00)")
    lines.extend(f"payments: {p}" for p in issues)
    lines.append(f"Counted: {SCOPE}.")
    if any("«" in ln for ln in lines):
        lines.append(DATA_NOTE)
    return lines


@tool(title="Summarize invoices", output=SummaryOutput, annotations=READ_ONLY)
async def summarize_invoices(args: SummaryInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Totals of all matching invoices in one call: balance owed (totals less payments) by status, top debtors and days
    past due. Filters as list_invoices; exact dollars. E.g. 'what does X owe'."""
    as_of = args.as_of_date or await svc.api_today()

    async def progress(done: int, msg: str) -> None:
        await call.ctx.report_progress(done, None, msg)

    s, name = await svc.summarize(
        args, as_of=as_of, max_invoices=args.max_invoices, progress=progress, balances=args.balances
    )
    tops = {c: _top(f, args.top, args.rank) for c, f in s.by_currency.items()}
    names = await svc.customer_names({cid for top in tops.values() for cid, _ in top if cid != "?"})
    balances = args.balances and s.payments_unavailable is None
    issues = _summary_issues(s, balances, s.main[0])
    out = _summary_output(s, tops, names, name, as_of, balances=balances, issues=issues)
    return result("\n".join(_summary_lines(s, args, tops, names, name, as_of, issues)), out)


class SummaryCurrency(BaseModel):
    """One other currency's figures (the same fields as the top level)."""

    count: int
    total: float
    by_status: dict[str, Bucket]
    unpaid: Bucket
    past_due: Bucket
    by_customer: list[CustomerDebt]
    aging: dict[str, Bucket]
    apart: dict[str, Bucket]
    with_payments: int
