"""list_payments: the payments themselves (what was collected, what failed), cursored like list_invoices."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

from mcp.types import CallToolResult
from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from invoice_mcp.server.inputs import CustomerId, DateFrom, DateTo, InvoiceRef, Strict, to_rfc3339
from invoice_mcp.server.render import (
    DATA_KEY,
    DATA_NOTE,
    PAYMENT_COLS,
    Cell,
    listed_payment,
    money,
    payment_line,
    payment_table,
)
from invoice_mcp.server.spec import READ_ONLY, ToolCall, ToolSpec, result
from invoice_mcp.text import money_text, quoted

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService

MONEY_WORDS = (
    "Words: collected = applied to invoices = the amount (sub_total) of succeeded payments; charged = what payers "
    "paid for them (total: applied + fees paid by customers); fees by merchant are absorbed, not charged; refunded "
    "and charged back = payments whose money went back (not collected); a row shows amount (charged when different)"
)
_WORD = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _word(value: str) -> str:
    """Payment statuses and methods are open enums: any short lowercase word goes to the API."""
    value = value.lower()
    if not _WORD.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a status/method word (e.g. succeeded, failed; card, ach)")
    return value


Word = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_word)]


class PaymentsInput(Strict):
    customer: str | None = Field(None, min_length=1, max_length=200, description="Company name")
    customer_id: CustomerId | None = None
    invoice: InvoiceRef | None = None
    status: Word | None = Field(None, description="succeeded, failed, pending, refunded, chargeback")
    method: Word | None = Field(None, description="card, ach…")
    created_at_start: DateFrom | None = None
    created_at_end: DateTo | None = None
    limit: int = Field(25, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=4000)

    @field_validator("created_at_start")
    @classmethod
    def _start(cls, v: str | None) -> str | None:
        return None if v is None else to_rfc3339(v, end=False)

    @field_validator("created_at_end")
    @classmethod
    def _end(cls, v: str | None) -> str | None:
        return None if v is None else to_rfc3339(v, end=True)

    @model_validator(mode="after")
    def _consistent(self) -> PaymentsInput:
        if self.customer and self.customer_id:
            raise ValueError("give either customer (a name) or customer_id, not both")
        if self.created_at_start and self.created_at_end and self.created_at_start > self.created_at_end:
            raise ValueError("created_at_start is after created_at_end")
        return self

    def api_filters(self) -> dict[str, str]:
        pairs = {
            "customer_id": self.customer_id,
            "status": self.status,
            "payment_method": self.method,
            "created_at_start": self.created_at_start,
            "created_at_end": self.created_at_end,
        }
        return {k: v for k, v in pairs.items() if v is not None}


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
    has_more: bool
    customer: str | None = None
    invoice: str | None = None
    not_attributed: int | None = Field(None, description="Rows whose invoice is not known yet; call again")
    hint: str | None = Field(None, description="The exact next call")
    data: str | None = None


def _invoice_of(target: tuple[str, str | None] | None) -> str | None:
    return (target[1] or target[0]) if target else None


async def list_payments(args: PaymentsInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    from invoice_mcp.service import PaymentsQuery
    from invoice_mcp.service.balances import tally

    query = PaymentsQuery(filters=args.api_filters(), customer=args.customer, invoice=args.invoice)
    listed = await svc.list_payments(query, args.limit, args.cursor)
    chunk = listed.chunk
    got_inv = listed.attributed
    rows = [listed_payment(p, listed.names, _invoice_of(got_inv.invoices.get(p.id or ""))) for p in chunk.rows]
    unknown = len(got_inv.unknown)
    no_invoice = len(got_inv.standalone)
    counted = tally(chunk.rows)
    per = counted.by_currency or {"": counted.paid}
    main = max(per, key=lambda c: (per[c], c == "USD"))
    got = per[main]
    issues = counted.issues.phrases(main)
    limit = "" if args.limit == PaymentsInput.model_fields["limit"].default else f", limit={args.limit}"
    next_call = f'list_payments(cursor="{chunk.next_cursor}"{limit})' if chunk.has_more else None
    customers, table = payment_table(rows)
    out = PaymentsOutput(
        cols=PAYMENT_COLS,
        customers=customers,
        rows=table,
        count=len(rows),
        collected=money(got) or 0.0,
        currency=main or None,
        payment_issues=issues or None,
        money={
            "applied": money(counted.paid) or 0.0,
            "charged": money(counted.charged) or 0.0,
            "fees_by_customer": money(counted.fees_customer) or 0.0,
            "fees_by_merchant": money(counted.fees_merchant) or 0.0,
            "refunded": money(counted.refunded) or 0.0,
            "charged_back": money(counted.charged_back) or 0.0,
        }
        if rows
        else None,
        next_cursor=chunk.next_cursor,
        has_more=chunk.has_more,
        customer=listed.customer,
        invoice=listed.invoice,
        not_attributed=unknown or None,
        hint=f"more: {next_call}" if next_call else None,
        data=DATA_KEY if any(r.customer for r in rows) else None,
    )
    scope = ""
    if listed.customer:
        scope += f" of {quoted(listed.customer, 60)}"
    if listed.invoice:
        scope += f" for invoice {quoted(listed.invoice, 40)}"
    failed = sum(1 for r in rows if r.status == "failed")
    amounts = " + ".join(
        money_text(v, c) + (" USD" if c == "USD" else "") for c, v in sorted(per.items(), key=lambda kv: kv[0] != main)
    )
    header = f"{len(rows)} payments{scope}, collected {amounts} (succeeded only)"
    if failed:
        header += f", {failed} failed"
    if not rows:
        header = f"no payments{scope} match" if not args.cursor else "no more payments"
    split = []
    if rows:

        def m(v: Decimal) -> str:
            return money_text(v, main)

        split = [
            f"applied to invoices {m(counted.paid)}, charged {m(counted.charged)}, fees paid by customers "
            f"{m(counted.fees_customer)} / by merchant {m(counted.fees_merchant)}; refunded {m(counted.refunded)} "
            f"({counted.refunded_count}), charged back {m(counted.charged_back)} ({counted.charged_back_count})",
            MONEY_WORDS,
        ]
    lines = [
        header,
        *(payment_line(r, who=not listed.customer) for r in rows),
        *split,
        *(f"payments: {p}" for p in issues),
    ]
    if no_invoice:
        lines.append(f"{no_invoice} payments belong to no invoice of their customer")
    if unknown:
        lines.append(
            f"{unknown} payments not yet tied to an invoice (lookup budget spent); the same call again continues"
        )
    lines.append(f"next: {next_call}" if next_call else "end of list")
    if any("«" in ln for ln in lines):
        lines.append(DATA_NOTE)
    return result("\n".join(lines), out)


SPEC_PAYMENTS = ToolSpec(
    name="list_payments",
    title="List payments",
    description=(
        "Payments newest first, in chunks, with count and amount collected (succeeded only). "
        "E.g. 'what did we collect in October', 'which payments failed'."
    ),
    input=PaymentsInput,
    output=PaymentsOutput,
    annotations=READ_ONLY,
    handler=list_payments,
)
