"""create_invoices: a billing run of up to 100 invoices with one confirmation, resumable.

Every row is validated and its customer resolved before anything is sent (one bad row: nothing
is sent, the error names it); the confirmation goes through the same policy as single writes;
rows are sent at the API's pace through the guarded, journaled create (service/batches.py).
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import BaseModel, Field, WithJsonSchema, field_validator, model_validator

from invoice_mcp.server.confirm import HOW, attribution
from invoice_mcp.server.inputs import Strict, real_date
from invoice_mcp.server.spec import IDEMPOTENT_WRITE, Confirmation, Confirmed, ToolCall, result, tool
from invoice_mcp.server.tools.writes import LineItemIn
from invoice_mcp.text import quoted, usd

if TYPE_CHECKING:
    from invoice_mcp.service import InvoiceService, LineToCreate
    from invoice_mcp.service.batches import BatchOutcome, BatchRow, Flag

BATCH_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAY_EXIST = " (MAY HAVE BEEN CREATED: check list_invoices before retrying)"


def calendar_day(v: str | None) -> str | None:
    """A day written YYYY-MM-DD that exists on the calendar (None stays None)."""
    if v is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        raise ValueError(f"{v[:20]!r} is not a date (YYYY-MM-DD)")
    return real_date(v)


class LineIn(Strict):
    # A line item as create_invoice takes it; its bounds are checked by the validator (no docstring:
    # it would be sent in tools/list).

    description: str
    amount: float = Field(gt=0)
    quantity: int = Field(ge=1)

    @model_validator(mode="after")
    def _same_rules(self) -> LineIn:
        LineItemIn.model_validate(self.model_dump())  # the single create's rules, one place
        return self

    def line(self) -> LineToCreate:
        from invoice_mcp.service import LineToCreate

        return LineToCreate(description=self.description, amount=Decimal(str(self.amount)), quantity=self.quantity)


class RowIn(Strict):
    customer: str = Field(description="id or exact name")
    line_items: list[LineIn]
    due_date: str | None = Field(None, description="YYYY-MM-DD")

    @field_validator("customer")
    @classmethod
    def _customer(cls, v: str) -> str:
        if not 1 <= len(v) <= 200:
            raise ValueError("customer must be 1 to 200 characters")
        return v

    @field_validator("line_items")
    @classmethod
    def _lines(cls, v: list[LineIn]) -> list[LineIn]:
        if not 1 <= len(v) <= 20:
            raise ValueError("a row has 1 to 20 line items")
        return v

    @field_validator("due_date")
    @classmethod
    def _real_date(cls, v: str | None) -> str | None:
        return calendar_day(v)


_LINE = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "amount": {"type": "number"},
        "quantity": {"type": "integer"},
    },
}
_ROWS = {
    "type": "array",
    "maxItems": 100,
    "items": {
        "type": "object",
        "properties": {
            "customer": {"type": "string"},
            "line_items": {"type": "array", "maxItems": 20, "items": _LINE},
            "due_date": {"type": "string", "format": "date"},
        },
        "required": ["customer", "line_items"],
    },
}
"""The rows' schema as sent in tools/list: inline and lean (the models check every bound and
required field; the description points to create_invoice's line items)."""


class BatchInput(Strict):
    rows: Annotated[list[RowIn], WithJsonSchema(_ROWS)] = Field(min_length=1, max_length=100)
    dry_run: Annotated[bool, WithJsonSchema({"type": "boolean"})] = False
    batch_id: str | None = None

    @field_validator("batch_id")
    @classmethod
    def _batch_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(BATCH_ID, v):
            raise ValueError("batch_id is 1 to 64 letters, digits, _ or -")
        return v


class BatchOutput(BaseModel):
    # Few top-level fields (tools/list cost): `counts` holds the rows per status, the total, how the
    # batch was confirmed and, in a preview, the per-customer totals.
    outcome: Literal["preview", "done", "not_sent"]
    batch_id: str
    counts: dict[str, Any]
    cols: list[str]
    rows: list[list[Any]]
    hint: str


def _specs(args: BatchInput) -> list[Any]:
    from invoice_mcp.service import InvoiceToCreate
    from invoice_mcp.service.batches import RowSpec

    drafts = (InvoiceToCreate(r.customer, tuple(li.line() for li in r.line_items), r.due_date) for r in args.rows)
    return [RowSpec(r.customer, d) for r, d in zip(args.rows, drafts, strict=True)]


async def _rows(args: BatchInput, svc: InvoiceService, asking: bool) -> tuple[str, list[BatchRow]]:
    """Every row validated and its customer resolved (once per call), and the batch id."""
    from invoice_mcp.service.batches import batch_id_of, draft_digest, resolve_rows

    rows = await resolve_rows(svc, _specs(args))
    scope = svc.journal.scope if svc.journal is not None else ""
    return args.batch_id or batch_id_of(scope, "create", draft_digest(rows, today="-")), rows


def _grand(rows: list[BatchRow]) -> Decimal:
    return sum((r.draft.total for r in rows), Decimal("0"))


def _per_customer(rows: list[BatchRow]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        totals[r.customer] += r.draft.total
    return dict(totals)


def _dues(rows: list[BatchRow]) -> str:
    dues = sorted({r.draft.due_date or "today" for r in rows})
    return dues[0] if len(dues) == 1 else f"{dues[0]} … {dues[-1]}"


def _summary(rows: list[BatchRow], batch_id: str) -> str:
    per = _per_customer(rows)
    top = ", ".join(f"{quoted(n, 40)} {usd(t)}" for n, t in sorted(per.items(), key=lambda kv: -kv[1])[:10])
    more = f" and {len(per) - 10} more" if len(per) > 10 else ""
    return (
        f"Create {len(rows)} LIVE, payable invoices (batch {batch_id}) for {len(per)} customers, total "
        f"{usd(_grand(rows))} USD, due {_dues(rows)}? Customers: {top}{more}."
    )


async def _question(args: BatchInput, prepared: tuple[str, list[BatchRow]], svc: InvoiceService) -> str:
    bid, rows = prepared
    return _summary(rows, bid)


def not_sent(bid: str, counts: dict[str, Any], hint: str, text: str) -> CallToolResult:
    """A batch the user did not confirm: nothing was sent."""
    return result(text, BatchOutput(outcome="not_sent", batch_id=bid, counts=counts, cols=[], rows=[], hint=hint))


def _preview(bid: str, rows: list[BatchRow], flags: list[Flag]) -> CallToolResult:
    flagged = {f.n: f.why for f in flags}
    per = _per_customer(rows)
    lines = [
        f"Preview of batch {bid} (nothing sent): {len(rows)} invoices, total {usd(_grand(rows))} USD, "
        f"{len(per)} customers, due {_dues(rows)}; {len(flags)} possible duplicates.",
        "Per customer: " + "; ".join(f"{quoted(n, 40)} {usd(t)}" for n, t in per.items()),
    ]
    for r in rows:
        dup = f" POSSIBLE DUPLICATE ({flagged[r.n]})" if r.n in flagged else ""
        lines.append(f"{r.n} {quoted(r.customer, 40)} {usd(r.draft.total)} due {r.draft.due_date or 'today'}{dup}")
    hint = f'create_invoices(same rows, batch_id="{bid}") sends them after one confirmation'
    lines.append(f"next: {hint}")
    out = BatchOutput(
        outcome="preview",
        batch_id=bid,
        counts={
            "rows": len(rows),
            "total": float(_grand(rows)),
            "confirmed": "preview",
            "possible_duplicates": len(flags),
            "customers": {n: float(t) for n, t in per.items()},
        },
        cols=["row", "customer", "total", "due", "duplicate_of"],
        rows=[[r.n, r.customer, float(r.draft.total), r.draft.due_date, flagged.get(r.n)] for r in rows],
        hint=hint,
    )
    return result("\n".join(lines), out)


def _report(
    res: BatchOutcome, how: Confirmed | Literal["not_required"], done_hint: str | None = None, retry: str = ""
) -> CallToolResult:
    counts: dict[str, int] = defaultdict(int)
    for r in res.rows:
        counts[r.status] += 1
    earlier = sum(1 for r in res.rows if r.earlier)
    total = sum((r.total for r in res.rows), Decimal("0"))
    head = (
        f"Batch {res.batch_id}: {len(res.rows)} rows, total {usd(total)} USD; "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + (f" ({earlier} by an earlier run)" if earlier else "")
        + f"; {HOW.get(how, 'no confirmation needed')}."
    )
    lines = [head]
    for r in res.rows:
        tail = f" {r.invoice_number or r.invoice_id or ''}".rstrip()
        if r.status == "failed":
            tail = f": {r.reason}" + (MAY_EXIST if r.may_exist else "")
        lines.append(
            f"{r.n} {r.status}{' (earlier)' if r.earlier else ''}{tail} {quoted(r.customer, 40)} {usd(r.total)}"
        )
    failed = counts.get("failed", 0) + counts.get("not_sent", 0)
    retry = retry or f'create_invoices(same rows, batch_id="{res.batch_id}") retries only the rows not created'
    hint = retry if failed else (done_hint or "done; list_invoices shows them")
    lines.append(f"next: {hint}")
    out = BatchOutput(
        outcome="done",
        batch_id=res.batch_id,
        counts={**counts, "total": float(total), "confirmed": how},
        cols=["row", "status", "invoice", "customer", "total", "earlier", "may_exist", "reason"],
        rows=[
            [
                r.n,
                r.status,
                r.invoice_number or r.invoice_id,
                r.customer,
                float(r.total),
                r.earlier,
                r.may_exist,
                r.reason,
            ]
            for r in res.rows
        ],
        hint=hint,
    )
    return result("\n".join(lines), out)


ASK_TO_BILL = Confirmation("billing run", _rows, _question)


@tool(title="Create invoices", output=BatchOutput, annotations=IDEMPOTENT_WRITE, confirm=ASK_TO_BILL)
async def create_invoices(args: BatchInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """≤100 LIVE invoices (create_invoice rows, customer id or name), one confirmation. dry_run previews; resumable."""
    from invoice_mcp.service.batches import possible_duplicates, run_create_batch

    bid, rows = call.subject
    if args.dry_run:
        return _preview(bid, rows, await possible_duplicates(svc, rows, bid))
    how = call.how
    if not call.accepted:
        counts = {"rows": len(rows), "total": float(_grand(rows)), "confirmed": how}
        text = f"Not sent: the user did not confirm batch {bid}. Nothing was sent to the API."
        return not_sent(bid, counts, "the user did not confirm; nothing was sent", text)
    res = await run_create_batch(svc, bid, rows, attribution(call, how), progress=call.ctx.report_progress)
    return _report(res, how)
