"""create_invoice, archive_invoice, restore_invoice: the tools that change money.

Creates and archives are confirmed by the user through MCP elicitation when the
client can show a form (policy INVOICE_MCP_CONFIRM). A create is never re-sent
after an ambiguous failure, and an identical create within 10 minutes is refused
unless `allow_duplicate` is set.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field, field_validator

from invoice_mcp.api.errors import AmbiguousWriteError
from invoice_mcp.server.tools.base import ToolSpec, api_errors, result, state, write_annotations
from invoice_mcp.server.tools.common import ref_of
from invoice_mcp.server.tools.inputs import CustomerId, InvoiceRef, Strict
from invoice_mcp.text import clean, q2, quoted, usd

if TYPE_CHECKING:  # the wire models load with the API client, not at start-up
    from invoice_mcp.api.models import Invoice, NewInvoice


class Confirm(BaseModel):
    ok: bool = Field(description="Go ahead?")


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
        if v is not None:
            try:
                date.fromisoformat(v)
            except ValueError:
                raise ValueError(f"{v!r} is not a real date (YYYY-MM-DD)") from None
        return v

    def new_invoice(self) -> NewInvoice:
        from invoice_mcp.api.models import NewInvoice, NewLineItem

        return NewInvoice(
            customer_id=self.customer_id,
            currency=self.currency,
            due_date=self.due_date,
            exclude_from_autopay=self.exclude_from_autopay,
            line_items=[
                NewLineItem(description=li.description, amount=Decimal(str(li.amount)), quantity=li.quantity)
                for li in self.line_items
            ],
        )

    def total(self) -> Decimal:
        return q2(sum((Decimal(str(li.amount)) * li.quantity for li in self.line_items), Decimal("0")))


class CreateOutput(BaseModel):
    """Small on purpose (tools/list cost): get_invoice has the full invoice."""

    outcome: Literal["created", "preview", "not_created"]
    total: float = Field(description="Sum of unit price × quantity, dollars")
    customer: str | None
    due_date: str | None
    invoice_id: str | None = None
    invoice_number: str | None = None
    status: str | None = None
    message: str


def _policy_allows(ctx: Context[Any, Any], action: str) -> bool:
    """True when the user must be asked through the client; False to proceed unasked."""
    policy = state(ctx).settings.confirm
    if policy == "never":
        return False
    caps = ctx.client_capabilities
    if caps is not None and caps.elicitation is not None:
        return True
    if policy == "always":
        raise ToolError(
            f"not done: this server requires the user to confirm every {action}, and this client cannot "
            "show confirmation prompts. Use a client with MCP elicitation, or have the administrator set "
            "INVOICE_MCP_CONFIRM=auto."
        )
    return False


def _preview(args: CreateInput, customer: str | None) -> str:
    lines = [f"Create a LIVE, payable invoice for {quoted(customer, 80) if customer else args.customer_id}?"]
    for li in args.line_items:
        lines.append(f"- {quoted(li.description, 80)}: {li.quantity} × {usd(Decimal(str(li.amount)))}")
    lines.append(f"Total {usd(args.total())} USD, due {args.due_date or 'today'}.")
    return "\n".join(lines)


async def confirm_create(
    customer_id: str,
    line_items: list[LineItemIn],
    due_date: str | None,
    dry_run: bool,
    allow_duplicate: bool,
    ctx: Context[Any, Any],
) -> Confirm | Elicit[Confirm]:
    args = CreateInput.model_validate({"customer_id": customer_id, "line_items": line_items, "due_date": due_date})
    svc = state(ctx).service
    if not dry_run and not allow_duplicate:
        dup = svc.recent_duplicate(args.new_invoice())
        if dup is not None:
            raise ToolError(
                f"not created: an identical invoice ({dup.invoice_number or dup.invoice_id}, id {dup.invoice_id}) "
                "was created for this customer in the last 10 minutes. If a second one is really wanted, "
                "call again with allow_duplicate=true."
            )
    if dry_run or not _policy_allows(ctx, "invoice creation"):
        return Confirm(ok=True)
    with api_errors(f"customer {customer_id}"):
        name = await svc.customer_name(customer_id)
    return Elicit(_preview(args, name), Confirm)


async def create_invoice(args: CreateInput, ctx: Context[Any, Any], confirmation: Any) -> CallToolResult:
    svc = state(ctx).service
    total = args.total()
    with api_errors(f"customer {args.customer_id}"):
        name = await svc.customer_name(args.customer_id)
    if name is None:
        raise ToolError(f"no customer with id {args.customer_id}; look it up with find_customers(name=…)")
    base = {"total": float(total), "customer": clean(name, 80), "due_date": args.due_date}
    if args.dry_run:
        out = CreateOutput(outcome="preview", message="preview only; nothing was created", **base)  # type: ignore[arg-type]
        return result(_preview(args, name) + "\n(dry run: nothing created; call again without dry_run to create)", out)
    if not _accepted(confirmation):
        out = CreateOutput(outcome="not_created", message="the user did not confirm; nothing was sent", **base)  # type: ignore[arg-type]
        return result("Not created: the user did not confirm. Nothing was sent to the API.", out)
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with api_errors(f"customer {args.customer_id}"):
            inv = await svc.create(args.new_invoice())
    except AmbiguousWriteError as exc:
        raise ToolError(
            f"the create failed in a way where the invoice may have been created ({exc.message}). Do not retry "
            f"blindly: first check list_invoices(customer_id={args.customer_id!r}, created_at_start={started!r})."
        ) from None
    out = CreateOutput(
        outcome="created",
        total=float(total),
        customer=clean(name, 80),
        due_date=inv.due_date or args.due_date,
        invoice_id=inv.id,
        invoice_number=inv.invoice_number,
        status=clean(inv.status, 32) or None,
        message="created: live and payable",
    )
    text = (
        f"Created {ref_of(inv)} (id {inv.id}) for {quoted(name, 80)}: total {usd(total)}, "
        f"due {out.due_date}, status {out.status}. It is live and payable; archive_invoice hides it if it was a "
        "mistake."
    )
    return result(text, out)


def _accepted(confirmation: Any) -> bool:
    if confirmation is None:
        return True
    return isinstance(confirmation, AcceptedElicitation) and bool(getattr(confirmation.data, "ok", False))


SPEC_CREATE = ToolSpec(
    name="create_invoice",
    title="Create invoice",
    description=(
        "Issue a LIVE, payable invoice (not a draft). Amounts are dollars: amount is the unit price, total = Σ amount "
        "× quantity. USD only. Use dry_run=true first to preview; the user may be asked to confirm."
    ),
    input=CreateInput,
    output=CreateOutput,
    annotations=write_annotations(destructive=False, idempotent=False),
    handler=create_invoice,
    confirm=confirm_create,
    confirm_model=Confirm,
)


class ArchiveInput(Strict):
    invoice: InvoiceRef


class ChangeOutput(BaseModel):
    outcome: Literal["archived", "restored", "unchanged", "not_archived"]
    invoice_id: str | None
    invoice_number: str | None
    status: str | None
    message: str


def _changed(outcome: Any, inv: Invoice, message: str) -> ChangeOutput:
    return ChangeOutput(
        outcome=outcome,
        invoice_id=inv.id,
        invoice_number=inv.invoice_number,
        status=clean(inv.status, 32) or None,
        message=message,
    )


async def confirm_archive(invoice: str, ctx: Context[Any, Any]) -> Confirm | Elicit[Confirm]:
    if not _policy_allows(ctx, "archive"):
        return Confirm(ok=True)
    svc = state(ctx).service
    with api_errors(f"invoice {invoice}"):
        inv = await svc.resolve_invoice(invoice)
        name = await svc.customer_name(inv.customer_id)
    return Elicit(
        f"Archive invoice {ref_of(inv)} for {quoted(name, 80) if name else inv.customer_id} "
        f"({usd(inv.total)}, {inv.status})? It disappears from lists and can no longer be paid until restored.",
        Confirm,
    )


async def archive_invoice(args: ArchiveInput, ctx: Context[Any, Any], confirmation: Any) -> CallToolResult:
    svc = state(ctx).service
    if not _accepted(confirmation):
        out = ChangeOutput(
            outcome="not_archived",
            invoice_id=None,
            invoice_number=None,
            status=None,
            message="the user did not confirm; nothing was sent",
        )
        return result(f"Not archived: the user did not confirm. {args.invoice} is unchanged.", out)
    with api_errors(f"invoice {args.invoice}"):
        invoice_id, _ = await svc.invoice_id(args.invoice)
        inv = await svc.archive(invoice_id)
    out = _changed("archived", inv, f"undo with restore_invoice(invoice={invoice_id!r})")
    return result(f"Archived {ref_of(inv)} (status {inv.status}). Undo: restore_invoice(invoice={invoice_id!r}).", out)


SPEC_ARCHIVE = ToolSpec(
    name="archive_invoice",
    title="Archive invoice",
    description=(
        "Archive (hide) an invoice: it leaves lists and cannot be paid. Not a refund or credit. "
        "restore_invoice undoes it. The user may be asked to confirm."
    ),
    input=ArchiveInput,
    output=ChangeOutput,
    annotations=write_annotations(destructive=True, idempotent=True),
    handler=archive_invoice,
    confirm=confirm_archive,
    confirm_model=Confirm,
)


async def restore_invoice(args: ArchiveInput, ctx: Context[Any, Any], _: object) -> CallToolResult:
    svc = state(ctx).service
    with api_errors(f"invoice {args.invoice}"):
        invoice_id, _inv = await svc.invoice_id(args.invoice)
        inv = await svc.restore(invoice_id)
    from invoice_mcp.api.models import InvoiceStatus

    still = (inv.status or "") == InvoiceStatus.ARCHIVED
    out = _changed("unchanged" if still else "restored", inv, f"status now {inv.status}")
    return result(f"Restored {ref_of(inv)}: status {inv.status}.", out)


SPEC_RESTORE = ToolSpec(
    name="restore_invoice",
    title="Restore invoice",
    description="Undo archive_invoice: the invoice returns to lists with its previous status.",
    input=ArchiveInput,
    output=ChangeOutput,
    annotations=write_annotations(destructive=False, idempotent=True),
    handler=restore_invoice,
)
