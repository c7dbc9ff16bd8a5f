"""archive_invoices and restore_invoices: a clean-up as one confirmed, undoable batch.

The preview lists exactly what will be archived; the result carries a batch id, and
restore_invoices(batch=…) returns every invoice of that batch to its previous status.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field, WithJsonSchema, field_validator

from invoice_mcp.server.confirm import attribution
from invoice_mcp.server.errors import tool_errors
from invoice_mcp.server.inputs import Strict, check_id
from invoice_mcp.server.spec import DESTRUCTIVE_WRITE, IDEMPOTENT_WRITE, Confirmation, ToolCall, result, tool
from invoice_mcp.server.tools.batches import BATCH_ID, BatchOutput, _report, calendar_day, not_sent
from invoice_mcp.text import clean, quoted, usd

if TYPE_CHECKING:
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service import InvoiceService

_REFS = {"type": "array", "maxItems": 100, "items": {"type": "string"}}


class ArchiveBatchInput(Strict):
    invoices: Annotated[list[str] | None, WithJsonSchema(_REFS)] = Field(None, max_length=100)
    status: str | None = Field(None, description="filter, e.g. draft")
    created_before: str | None = Field(None, description="filter, YYYY-MM-DD")
    customer: str | None = Field(None, description="filter, id or name")
    dry_run: Annotated[bool, WithJsonSchema({"type": "boolean"})] = False

    @field_validator("created_before")
    @classmethod
    def _day(cls, v: str | None) -> str | None:
        return calendar_day(v)

    @field_validator("invoices")
    @classmethod
    def _refs(cls, v: list[str] | None) -> list[str] | None:
        return [check_id(r.strip()) for r in v] if v is not None else None


Targets = tuple[str, list["Invoice"], dict[str, str]]
"""A clean-up's batch id, the invoices it archives and their customers' names."""


async def _targets(args: ArchiveBatchInput, svc: InvoiceService, asking: bool) -> Targets:
    """Exactly what will be archived, looked up once per call (the preview, the question and the run)."""
    from invoice_mcp.service.batches import ArchiveFilter, archive_targets, batch_id_of

    where = None
    if args.status or args.created_before or args.customer:
        customer_id = (await svc.customers.resolve(args.customer)).id if args.customer else None
        where = ArchiveFilter(args.status, args.created_before, customer_id)
    targets = await archive_targets(svc, args.invoices or [], where)
    names = await svc.customer_names({t.customer_id for t in targets if t.customer_id})
    if not targets:
        raise ToolError("nothing to archive: no invoice matches (archived ones are left out); nothing was sent")
    scope = svc.journal.scope if svc.journal is not None else ""
    return batch_id_of(scope, "archive", sorted(t.id or "" for t in targets)), targets, names


def _listing(targets: list[Invoice], names: dict[str, str]) -> list[str]:
    return [
        f"{n} {clean(t.invoice_number, 40) or t.id} {quoted(names.get(t.customer_id or '', ''), 40)} "
        f"{usd(t.total)} {clean(t.status, 20)}"
        for n, t in enumerate(targets)
    ]


def _sum(targets: list[Invoice]) -> Decimal:
    return sum((t.total or Decimal("0") for t in targets), Decimal("0"))


async def _question(args: ArchiveBatchInput, prepared: Targets, svc: InvoiceService) -> str:
    bid, targets, names = prepared
    shown = _listing(targets, names)
    more = f"\n… and {len(shown) - 20} more" if len(shown) > 20 else ""
    return (
        f"Archive {len(targets)} invoices (batch {bid}, total {usd(_sum(targets))})? They leave lists and "
        f"cannot be paid until restored.\n" + "\n".join(shown[:20]) + more
    )


ASK_TO_ARCHIVE = Confirmation("archive", _targets, _question)


@tool(title="Archive invoices", output=BatchOutput, annotations=DESTRUCTIVE_WRITE, confirm=ASK_TO_ARCHIVE)
async def archive_invoices(args: ArchiveBatchInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Archive up to 100 invoices, listed (ids/numbers) or by filter, with one confirmation; dry_run lists exactly
    which. restore_invoices(batch) undoes it."""
    from invoice_mcp.service.batches import run_change_batch

    bid, targets, names = call.subject
    rows = [
        [n, t.invoice_number or t.id, names.get(t.customer_id or ""), float(t.total or 0), t.status]
        for n, t in enumerate(targets)
    ]
    if args.dry_run:
        text = (
            f"Preview of batch {bid} (nothing sent): archive exactly these {len(targets)} invoices, total "
            f"{usd(_sum(targets))}:\n" + "\n".join(_listing(targets, names)) + "\nnext: archive_invoices(same "
            "arguments) archives them after one confirmation"
        )
        out = BatchOutput(
            outcome="preview",
            batch_id=bid,
            counts={"rows": len(targets), "total": float(_sum(targets)), "confirmed": "preview"},
            cols=["row", "invoice", "customer", "total", "status"],
            rows=rows,
            hint="archive_invoices(same arguments) archives them after one confirmation",
        )
        return result(text, out)
    how = call.how
    if not call.accepted:
        text = f"Not archived: the user did not confirm batch {bid}. Nothing was sent."
        hint = "the user did not confirm; nothing was archived"
        return not_sent(bid, {"rows": len(targets), "confirmed": how}, hint, text)
    res = await run_change_batch(
        svc, bid, targets, attribution(call, how), action="archive", names=names, progress=call.ctx.report_progress
    )
    undo = f'restore_invoices(batch="{bid}") undoes the whole batch'
    return _report(res, how, done_hint=undo, retry=f"archive_invoices(same arguments) retries; {undo}")


class RestoreBatchInput(Strict):
    batch: str = Field(description="batch_id of archive_invoices")

    @field_validator("batch")
    @classmethod
    def _batch(cls, v: str) -> str:
        import re

        if not re.fullmatch(BATCH_ID, v):
            raise ValueError("batch is the batch_id archive_invoices returned")
        return v


@tool(title="Restore invoices", output=BatchOutput, annotations=IDEMPOTENT_WRITE)
async def restore_invoices(args: RestoreBatchInput, svc: InvoiceService, call: ToolCall) -> CallToolResult:
    """Undo archive_invoices: every invoice of the batch returns to its previous status."""
    from invoice_mcp.service.batches import archived_by, run_change_batch

    with tool_errors():
        targets = await archived_by(svc, args.batch)
        names = await svc.customer_names({t.customer_id for t in targets if t.customer_id})
    res = await run_change_batch(
        svc,
        f"r_{args.batch}"[:64],
        targets,
        attribution(call, "not_required"),
        action="restore",
        names=names,
        progress=call.ctx.report_progress,
    )
    return _report(res, "not_required", done_hint=f"batch {args.batch} undone", retry="restore_invoices(same batch)")
