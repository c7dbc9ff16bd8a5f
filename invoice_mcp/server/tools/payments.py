"""list_payments: the payments themselves (what was collected, what failed), cursored like list_invoices."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from invoice_mcp.server.inputs import PaymentQuery
from invoice_mcp.server.render import (
    DATA_KEY,
    DATA_NOTE,
    PAYMENT_COLS,
    Cell,
    ListedPayment,
    listed_payment,
    money,
    payment_line,
    payment_table,
)
from invoice_mcp.server.spec import READ_ONLY, ToolCall, result, tool
from invoice_mcp.text import money_text, quoted

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService, PaymentsListed
    from invoice_mcp.service.balances import Tallied

MONEY_WORDS = (
    "Words: collected = applied to invoices = the amount (sub_total) of succeeded payments; charged = what payers "
    "paid for them (total: applied + fees paid by customers); fees by merchant are absorbed, not charged; refunded "
    "and charged back = payments whose money went back (not collected); a row shows amount (charged when different)"
)


class PaymentsInput(PaymentQuery):
    limit: int = Field(25, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=4000)


class PaymentsOutput(BaseModel):
    cols: list[str] = Field(description="Column names of each row")
    customers: list[str] = Field(description="Rows' customer = position here")
    rows: list[list[Cell]]
    count: int
    collected: float = Field(description="Succeeded, this chunk")
    currency: str | None = Field(None, description="Of collected, when payments name one")
    payment_issues: list[str] | None = Field(None, description="Payments not counted, and why")
    money: dict[str, float] | None = Field(None, description="applied, charged, fees, refunded, charged_back")
    next_cursor: str | None = None
    prev_cursor: str | None = None
    has_more: bool
    customer: str | None = None
    invoice: str | None = None
    not_attributed: int | None = Field(None, description="Rows whose invoice is not known yet; call again")
    hint: str | None = Field(None, description="The exact next call")
    data: str | None = None


def _invoice_of(target: tuple[str, str | None] | None) -> str | None:
    return (target[1] or target[0]) if target else None


def _call(cursor: str | None, limit: int) -> str | None:
    """The exact call that reads the chunk `cursor` names (None without a cursor)."""
    if cursor is None:
        return None
    extra = "" if limit == PaymentsInput.model_fields["limit"].default else f", limit={limit}"
    return f'list_payments(cursor="{cursor}"{extra})'


def _money(counted: Tallied) -> dict[str, float]:
    return {
        "applied": money(counted.paid) or 0.0,
        "charged": money(counted.charged) or 0.0,
        "fees_by_customer": money(counted.fees_customer) or 0.0,
        "fees_by_merchant": money(counted.fees_merchant) or 0.0,
        "refunded": money(counted.refunded) or 0.0,
        "charged_back": money(counted.charged_back) or 0.0,
    }


def _header(listed: PaymentsListed, rows: list[ListedPayment], per: dict[str, Decimal], main: str, more: bool) -> str:
    """The first line: how many payments of whom, and what they collected."""
    scope = ""
    if listed.customer:
        scope += f" of {quoted(listed.customer, 60)}"
    if listed.invoice:
        scope += f" for invoice {quoted(listed.invoice, 40)}"
    if not rows:
        return "no more payments" if more else f"no payments{scope} match"
    amounts = " + ".join(
        money_text(v, c) + (" USD" if c == "USD" else "") for c, v in sorted(per.items(), key=lambda kv: kv[0] != main)
    )
    failed = sum(1 for r in rows if r.status == "failed")
    return f"{len(rows)} payments{scope}, collected {amounts} (succeeded only)" + (
        f", {failed} failed" if failed else ""
    )


def _money_lines(counted: Tallied, main: str) -> list[str]:
    """Where the money of the chunk went, in words defined once."""

    def m(v: Decimal) -> str:
        return money_text(v, main)

    return [
        f"applied to invoices {m(counted.paid)}, charged {m(counted.charged)}, fees paid by customers "
        f"{m(counted.fees_customer)} / by merchant {m(counted.fees_merchant)}; refunded {m(counted.refunded)} "
        f"({counted.refunded_count}), charged back {m(counted.charged_back)} ({counted.charged_back_count})",
        MONEY_WORDS,
    ]


def _tail(listed: PaymentsListed, next_call: str | None, prev_call: str | None) -> list[str]:
    """Attribution gaps, then how to go on (and back)."""
    lines = []
    if listed.attributed.standalone:
        lines.append(f"{len(listed.attributed.standalone)} payments belong to no invoice of their customer")
    if listed.attributed.unknown:
        lines.append(
            f"{len(listed.attributed.unknown)} payments not yet tied to an invoice (lookup budget spent); "
            "the same call again continues"
        )
    lines.append(f"next: {next_call}" if next_call else "end of list")
    if prev_call:
        lines.append(f"prev: {prev_call}")
    return lines


@tool(title="List payments", output=PaymentsOutput, annotations=READ_ONLY)
async def list_payments(args: PaymentsInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Payments newest first, in chunks, with count and amount collected (succeeded only). E.g. October's collections,
    failures."""
    from invoice_mcp.service.balances import tally

    listed = await svc.list_payments(args, args.limit, args.cursor)
    chunk, invoices = listed.chunk, listed.attributed.invoices
    rows = [listed_payment(p, listed.names, _invoice_of(invoices.get(p.id or ""))) for p in chunk.rows]
    counted = tally(chunk.rows)
    per = counted.by_currency or {"": counted.paid}
    main = max(per, key=lambda c: (per[c], c == "USD"))
    issues = counted.issues.phrases(main)
    next_call = _call(chunk.next_cursor, args.limit) if chunk.has_more else None
    prev_call = _call(chunk.prev_cursor, args.limit)
    customers, table = payment_table(rows)
    out = PaymentsOutput(
        cols=PAYMENT_COLS,
        customers=customers,
        rows=table,
        count=len(rows),
        collected=money(per[main]) or 0.0,
        currency=main or None,
        payment_issues=issues or None,
        money=_money(counted) if rows else None,
        next_cursor=chunk.next_cursor,
        prev_cursor=chunk.prev_cursor,
        has_more=chunk.has_more,
        customer=listed.customer,
        invoice=listed.invoice,
        not_attributed=len(listed.attributed.unknown) or None,
        hint=f"more: {next_call}" if next_call else None,
        data=DATA_KEY if any(r.customer for r in rows) else None,
    )
    lines = [
        _header(listed, rows, per, main, bool(args.cursor)),
        *(payment_line(r, who=not listed.customer) for r in rows),
        *(_money_lines(counted, main) if rows else []),
        *(f"payments: {p}" for p in issues),
        *_tail(listed, next_call, prev_call),
    ]
    if any("«" in ln for ln in lines):
        lines.append(DATA_NOTE)
    return result("\n".join(lines), out)
