"""create_invoice, archive_invoice, restore_invoice: the tools that change money.

Creates and archives are confirmed by the user through MCP elicitation when the
client can show a form (policy INVOICE_MCP_CONFIRM). A create is never re-sent
after an ambiguous failure, and an identical create within 10 minutes is refused
unless `allow_duplicate` is set: the service's guard (service/guard.py) is the authority.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field, field_validator

from invoice_mcp.server.confirm import HOW, attribution
from invoice_mcp.server.inputs import CustomerId, InvoiceRef, Strict, real_date
from invoice_mcp.server.render import ref_of
from invoice_mcp.server.spec import (
    DESTRUCTIVE_WRITE,
    IDEMPOTENT_WRITE,
    VIEW_META,
    WRITE,
    Confirmation,
    Confirmed,
    ToolCall,
    result,
    tool,
)
from invoice_mcp.text import clean, quoted, to_cents, usd

if TYPE_CHECKING:  # the service (and the wire models with it) loads on first call, not at start-up
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service import InvoiceService, InvoiceToCreate, LineToCreate
    from invoice_mcp.service.errors import DuplicateInvoice


class LineItemIn(Strict):
    description: str = Field(min_length=1, max_length=500, description="What was delivered")
    amount: float = Field(gt=0, le=10_000_000, description="Unit price in dollars, e.g. 49.99")
    quantity: int = Field(ge=1, le=1_000_000, description="Whole units")

    @field_validator("amount")
    @classmethod
    def _cents(cls, v: float) -> float:
        if Decimal(str(v)).as_tuple().exponent < -2:  # type: ignore[operator]
            raise ValueError("amount has more than 2 decimal places (dollars and cents)")
        return v

    @field_validator("description")
    @classmethod
    def _printable(cls, v: str) -> str:
        cleaned = clean(v, 500)
        if not cleaned:
            raise ValueError("description is empty")
        return cleaned

    def line(self) -> LineToCreate:
        from invoice_mcp.service import LineToCreate

        return LineToCreate(description=self.description, amount=Decimal(str(self.amount)), quantity=self.quantity)


class CreateInput(Strict):
    customer_id: CustomerId = Field(description="From find_customers")
    line_items: list[LineItemIn] = Field(min_length=1, max_length=100)
    due_date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (default today)")
    currency: Literal["USD"] = "USD"
    exclude_from_autopay: bool | None = Field(None, description="Keep this invoice out of Autopay")
    dry_run: bool = Field(False, description="Preview only: validate and total, create nothing")
    allow_duplicate: bool = Field(False, description="Create even if an identical invoice was created minutes ago")

    @field_validator("due_date")
    @classmethod
    def _real_date(cls, v: str | None) -> str | None:
        return real_date(v)

    def draft(self) -> InvoiceToCreate:
        from invoice_mcp.service import InvoiceToCreate

        fields = self.model_dump(include={"customer_id", "currency", "due_date", "exclude_from_autopay"})
        return InvoiceToCreate(lines=tuple(li.line() for li in self.line_items), **fields)

    def total(self) -> Decimal:
        return to_cents(sum((Decimal(str(li.amount)) * li.quantity for li in self.line_items), Decimal("0")))


class CreateOutput(BaseModel):
    """Small on purpose (tools/list cost): get_invoice has the full invoice."""

    outcome: Literal["created", "preview", "not_created"]
    confirmed: Confirmed
    total: float = Field(description="Sum of unit price × quantity, dollars")
    customer: str | None = None
    due_date: str | None = None
    invoice_id: str | None = None
    invoice_number: str | None = None
    status: str | None = None
    message: str
    duplicate_of: str | None = None
    """A preview's possible duplicate: the number of an identical invoice created within the guard's window."""


def _preview(args: CreateInput, customer: str | None) -> str:
    lines = [f"Create a LIVE, payable invoice for {quoted(customer, 80) if customer else args.customer_id}?"]
    for li in args.line_items:
        lines.append(f"- {quoted(li.description, 80)}: {li.quantity} × {usd(Decimal(str(li.amount)))}")
    lines.append(f"Total {usd(args.total())} USD, due {args.due_date or 'today'}.")
    return "\n".join(lines)


async def _customer(args: CreateInput, svc: InvoiceService, asking: bool) -> str:
    """The customer's name (looked up once for the question, the preview and the result), and a
    quick refusal of a duplicate before the user is asked."""
    name = await svc.customer_name(args.customer_id)
    if name is None:
        raise ToolError(f"no customer with id {args.customer_id}; look it up with find_customers(name=…)")
    if not args.dry_run and not args.allow_duplicate:
        dup = await svc.recent_duplicate(args.draft())
        if dup is not None:
            raise dup
    return name


async def _create_question(args: CreateInput, name: str, svc: InvoiceService) -> str:
    return _preview(args, name)


def _duplicate_warning(dup: DuplicateInvoice) -> tuple[str | None, str]:
    """The number of a possible duplicate, and the warning a preview gives about it."""
    from invoice_mcp.service.guard import DUPLICATE_WINDOW_S

    ref = clean(dup.invoice_number or dup.invoice_id, 64) or None
    what = f"invoice {ref}" if ref else "an identical create"
    when = f" at {clean(dup.at, 40)}" if dup.at else ""
    return ref, (
        f"possible duplicate: {what} (same customer, lines and due date) was "
        f"{'created' if dup.state == 'created' else 'started'}{when}, within the last "
        f"{int(DUPLICATE_WINDOW_S // 60)} minutes; a create now is refused unless allow_duplicate=true. "
        + (f"Check it with get_invoice(invoice={ref!r}) first." if ref else "Check list_invoices first.")
    )


async def _dry_run(args: CreateInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    name = call.subject
    dup = await svc.possible_duplicate(args.draft())
    ref, warning = _duplicate_warning(dup) if dup is not None else (None, None)
    message = "preview only; nothing was created" + (f"; {warning}" if warning else "")
    text = _preview(args, name) + "\n(dry run: nothing created; call again without dry_run to create)"
    text += f"\n{warning}" if warning else ""
    base = {"total": float(args.total()), "customer": clean(name, 80), "due_date": args.due_date}
    out = CreateOutput(outcome="preview", confirmed="preview", message=message, duplicate_of=ref, **base)  # type: ignore[arg-type]
    res = result(text, out)
    if call.apps:  # the preview card warns before its Create button is pressed (hosts keep _meta from the model)
        res.meta = {VIEW_META: {} if warning is None or args.allow_duplicate else {"duplicate": warning}}
    return res


ASK_TO_CREATE = Confirmation("invoice creation", _customer, _create_question)


@tool(title="Create invoice", output=CreateOutput, annotations=WRITE, confirm=ASK_TO_CREATE)
async def create_invoice(args: CreateInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Issue a LIVE, payable invoice (not a draft). Amounts are dollars: amount is the unit price, total = Σ amount ×
    quantity. USD only. Preview with dry_run=true first (it warns of a duplicate). The user confirms when the client
    can ask; the result's confirmed field says how."""
    if args.dry_run:
        return await _dry_run(args, svc, call)
    name, how, total = call.subject, call.how, args.total()
    if not call.accepted:
        out = CreateOutput(
            outcome="not_created",
            confirmed=how,
            total=float(total),
            customer=clean(name, 80),
            due_date=args.due_date,
            message="the user did not confirm; nothing was sent",
        )
        return result("Not created: the user did not confirm. Nothing was sent to the API.", out)
    inv = await svc.create(args.draft(), allow_duplicate=args.allow_duplicate, who=attribution(call, how))
    out = CreateOutput(
        outcome="created",
        confirmed=how,
        total=float(total),
        customer=clean(name, 80),
        due_date=inv.due_date or args.due_date,
        invoice_id=inv.id,
        invoice_number=inv.invoice_number,
        status=clean(inv.status, 32) or None,
        message=f"created: live and payable; {HOW[how]}",
    )
    text = (
        f"Created {ref_of(inv)} (id {inv.id}) for {quoted(name, 80)}: total {usd(total)}, "
        f"due {out.due_date}, status {out.status}; {HOW[how]}. It is live and payable; archive_invoice hides it "
        "if it was a mistake."
    )
    return result(text, out)


class ArchiveInput(Strict):
    invoice: InvoiceRef


class ChangeOutput(BaseModel):
    outcome: Literal["archived", "restored", "unchanged", "not_archived"]
    confirmed: Confirmed | None = None
    invoice_id: str | None = None
    invoice_number: str | None = None
    status: str | None = None
    message: str


async def _invoice(args: ArchiveInput, svc: InvoiceService, asking: bool) -> tuple[str, Invoice | None]:
    """The invoice's id, and the invoice when it was read: for a number (resolved by one request)
    or when the user is asked (the question shows it). Looked up once: the handler archives it."""
    if not asking:
        return await svc.invoice_id(args.invoice)
    inv = await svc.resolve_invoice(args.invoice)
    if not inv.id:
        from invoice_mcp.service.errors import NotFound

        raise NotFound("invoice", args.invoice)
    return inv.id, inv


async def _archive_question(args: ArchiveInput, subject: tuple[str, Invoice | None], svc: InvoiceService) -> str:
    _, inv = subject
    assert inv is not None  # read by `_invoice` whenever the user is asked
    name = await svc.customer_name(inv.customer_id)
    return (
        f"Archive invoice {ref_of(inv)} for {quoted(name, 80) if name else clean(inv.customer_id, 64)} "
        f"({usd(inv.total)}, {clean(inv.status, 32)})? It disappears from lists and can no longer be paid "
        "until restored."
    )


ASK_TO_ARCHIVE = Confirmation("archive", _invoice, _archive_question)


@tool(title="Archive invoice", output=ChangeOutput, annotations=DESTRUCTIVE_WRITE, confirm=ASK_TO_ARCHIVE)
async def archive_invoice(args: ArchiveInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Archive (hide) an invoice: it leaves lists and cannot be paid; not a refund. restore_invoice undoes it. The user
    confirms when the client can ask; the result's confirmed field says how."""
    how = call.how
    if not call.accepted:
        out = ChangeOutput(outcome="not_archived", confirmed=how, message="the user did not confirm; nothing was sent")
        return result(f"Not archived: the user did not confirm. {args.invoice} is unchanged.", out)
    invoice_id, previous = call.subject
    inv = await svc.archive(invoice_id, who=attribution(call, how), previous=previous)
    out = ChangeOutput(
        outcome="archived",
        confirmed=how,
        invoice_id=inv.id,
        invoice_number=inv.invoice_number,
        status=clean(inv.status, 32) or None,
        message=f"{HOW[how]}; undo with restore_invoice(invoice={invoice_id!r})",
    )
    return result(
        f"Archived {ref_of(inv)} (status {out.status}); {HOW[how]}. Undo: restore_invoice(invoice={invoice_id!r}).",
        out,
    )


@tool(title="Restore invoice", output=ChangeOutput, annotations=IDEMPOTENT_WRITE)
async def restore_invoice(args: ArchiveInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Undo archive_invoice: the invoice returns to lists with its previous status."""
    from invoice_mcp.api.models import InvoiceStatus

    invoice_id, previous = await svc.invoice_id(args.invoice)
    inv = await svc.restore(invoice_id, who=attribution(call, "not_required"), previous=previous)
    still = (inv.status or "") == InvoiceStatus.ARCHIVED
    status = clean(inv.status, 32) or None
    out = ChangeOutput(
        outcome="unchanged" if still else "restored",
        confirmed=None,
        invoice_id=inv.id,
        invoice_number=inv.invoice_number,
        status=status,
        message=f"status now {status}",
    )
    return result(f"Restored {ref_of(inv)}: status {status}.", out)
