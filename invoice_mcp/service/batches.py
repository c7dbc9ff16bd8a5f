"""Batch writes: many invoices created (or archived) as one resumable unit.

A batch has an id derived from its content (or given by the caller). Its rows are sent one by
one through the same guarded, journaled path as single writes; the journal's entries for the
batch are its memory, so re-issuing the batch after a cancel, a crash or a restart sends only
rows that did not certainly go through, and a row whose outcome was lost is first looked for
on the API. One holder at a time: a lease in the state store, renewed as rows go and expiring
30 s after its holder stops renewing (at once when the holder was a dead process on this host).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio

from invoice_mcp.api.errors import APIError
from invoice_mcp.service.errors import DuplicateInvoice, NotFound, PossiblyCreated, ServiceError
from invoice_mcp.service.journal import Attribution, Entry, parse_iso
from invoice_mcp.service.writes import InvoiceToCreate, draft_fingerprint
from invoice_mcp.state import Schema, StateError, Tx, step
from invoice_mcp.text import clean

if TYPE_CHECKING:
    from invoice_mcp.api.models import Invoice
    from invoice_mcp.service.invoices import InvoiceService

MAX_ROWS: Final = 100
LEASE_S: Final = 30.0
"""A lock left by a killed process delays a re-issue by at most this long."""

BATCH_SCHEMA: Final = Schema.of(
    "batches",
    step(
        """CREATE TABLE batch_runs (
            scope TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            digest TEXT NOT NULL,
            row_count BIGINT NOT NULL,
            owner TEXT,
            owner_host TEXT,
            owner_pid BIGINT,
            lease_until DOUBLE PRECISION,
            PRIMARY KEY (scope, batch_id)
        )"""
    ),
)

RowStatus = Literal["created", "duplicate", "failed", "not_sent", "archived", "restored", "unchanged"]


class BatchError(ServiceError):
    """A batch that cannot run as given (the message names the row and field); nothing was sent."""


class BatchBusy(ServiceError):
    """Another live process holds the batch (it is running it right now)."""


@dataclass(frozen=True)
class BatchRow:
    n: int
    draft: InvoiceToCreate
    customer: str


@dataclass
class RowResult:
    n: int
    status: RowStatus
    customer: str
    total: Decimal
    invoice_id: str | None = None
    invoice_number: str | None = None
    reason: str | None = None
    may_exist: bool = False
    earlier: bool = False
    """Done by an earlier run of this batch."""


@dataclass
class BatchOutcome:
    batch_id: str
    rows: list[RowResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)


def batch_id_of(scope: str, kind: str, parts: Sequence[Any]) -> str:
    body = json.dumps([scope, kind, list(parts)], sort_keys=True, separators=(",", ":"), default=str)
    return "b_" + hashlib.sha256(body.encode()).hexdigest()[:20]


def draft_digest(rows: Sequence[BatchRow], *, today: str) -> list[str]:
    return [draft_fingerprint(r.draft, today=today) for r in rows]


def _alive(pid: int) -> bool:
    """Whether a process of this host still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Lease:
    """Who runs a batch right now, in the state store (every replica sees it)."""

    def __init__(
        self,
        svc: InvoiceService,
        scope: str,
        batch_id: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        lease_s: float = LEASE_S,
    ) -> None:
        assert svc.journal is not None
        self._lazy = svc.journal.store
        self.scope = scope
        self.batch_id = batch_id
        self._clock = clock
        self._sleep = sleep
        self.lease_s = lease_s
        self.owner = os.urandom(8).hex()
        self._host = socket.gethostname()
        self._pid = os.getpid()

    async def _tx(self, fn: Callable[[Tx], Any]) -> Any:
        store = await self._lazy.get(BATCH_SCHEMA)
        return await store.transaction(fn)

    def _try(self, tx: Tx, kind: str, digest: str, rows: int) -> float | None:
        """None when acquired, else the time the holder's lease runs out."""
        tx.lock(f"batch:{self.scope}:{self.batch_id}")
        now = self._clock()
        row = tx.fetchone(
            "SELECT digest, owner, owner_host, owner_pid, lease_until FROM batch_runs WHERE scope = ? AND batch_id = ?",
            (self.scope, self.batch_id),
        )
        mine = (self.owner, self._host, self._pid, now + self.lease_s, self.scope, self.batch_id)
        if row is None:
            tx.execute(
                "INSERT INTO batch_runs (scope, batch_id, kind, digest, row_count, owner, owner_host, owner_pid, "
                "lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.scope, self.batch_id, kind, digest, rows, self.owner, self._host, self._pid, now + self.lease_s),
            )
            return None
        if row[0] != digest:
            raise BatchError(
                f"batch id {self.batch_id!r} was already used for a different batch; nothing was sent. "
                "Give a new batch_id, or leave it out (the id is then derived from the rows)."
            )
        holder, host, pid, until = row[1], row[2], row[3], row[4]
        free = holder is None or holder == self.owner or until is None or float(until) <= now
        if not free and host == self._host and pid is not None and int(pid) != self._pid and not _alive(int(pid)):
            free = True  # its holder was killed on this host: no need to wait out the lease
        if not free:
            return float(until)
        tx.execute(
            "UPDATE batch_runs SET owner = ?, owner_host = ?, owner_pid = ?, lease_until = ? "
            "WHERE scope = ? AND batch_id = ?",
            mine,
        )
        return None

    async def acquire(self, kind: str, digest: str, rows: int, *, wait_s: float | None = None) -> None:
        """Take the batch, waiting while a live holder renews it (at most ``wait_s``, default: as
        long as it keeps renewing plus one lease)."""
        deadline = None if wait_s is None else self._clock() + wait_s
        while True:
            until = await self._tx(lambda tx: self._try(tx, kind, digest, rows))
            if until is None:
                return
            now = self._clock()
            if deadline is not None and now >= deadline:
                raise BatchBusy(
                    f"batch {self.batch_id} is being run by another process right now; call again in "
                    f"{max(1, round(until - now))} s to see its result (re-issuing never sends a row twice)"
                )
            await self._sleep(max(0.05, min(1.0, until - now)))

    async def renew(self) -> None:
        await self._tx(
            lambda tx: tx.execute(
                "UPDATE batch_runs SET lease_until = ? WHERE scope = ? AND batch_id = ? AND owner = ?",
                (self._clock() + self.lease_s, self.scope, self.batch_id, self.owner),
            )
        )

    async def release(self) -> None:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(StateError):  # else the lease runs out by itself
                await self._tx(
                    lambda tx: tx.execute(
                        "UPDATE batch_runs SET owner = NULL, lease_until = NULL "
                        "WHERE scope = ? AND batch_id = ? AND owner = ?",
                        (self.scope, self.batch_id, self.owner),
                    )
                )


Progress = Callable[[int, int, str], Awaitable[None]]


async def _noop(done: int, total: int, msg: str) -> None:
    return None


async def run_create_batch(
    svc: InvoiceService,
    batch_id: str,
    rows: Sequence[BatchRow],
    who: Attribution,
    *,
    progress: Progress = _noop,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    wait_s: float | None = None,
) -> BatchOutcome:
    """Send every row that did not certainly go through in an earlier run; report every row."""
    journal = svc.journal
    if journal is None:
        raise BatchError("batches need the state store (the write journal); nothing was sent")
    writer = svc.writer
    today = writer.today()
    digest = hashlib.sha256("|".join(draft_digest(rows, today="-")).encode()).hexdigest()
    lease = Lease(svc, journal.scope, batch_id, clock=clock, sleep=sleep)
    await lease.acquire("create", digest, len(rows), wait_s=wait_s)
    out = BatchOutcome(batch_id)
    try:
        done = await journal.batch(batch_id)
        recent = await writer.recent_invoices()
        for i, row in enumerate(rows):
            result = await _create_row(svc, batch_id, row, who, done.get(row.n), recent, today)
            out.rows.append(result)
            await lease.renew()
            label = result.invoice_number or result.status
            await progress(i + 1, len(rows), f"row {row.n}: {result.status} {label}")
    except BaseException:
        for row in rows[len(out.rows) :]:
            out.rows.append(RowResult(row.n, "not_sent", row.customer, row.draft.total, reason="interrupted"))
        raise
    finally:
        await lease.release()
        svc.chunks.forget()
        svc.payments.forget()
    return out


async def _create_row(
    svc: InvoiceService,
    batch_id: str,
    row: BatchRow,
    who: Attribution,
    prev: Entry | None,
    recent: dict[str, Invoice],
    today: str,
) -> RowResult:
    journal = svc.journal
    assert journal is not None
    base = RowResult(row.n, "failed", row.customer, row.draft.total)
    if prev is not None and prev.outcome == "created":
        return _done(base, "created", prev.invoice_id, prev.invoice_number, earlier=True)
    if prev is not None and prev.outcome == "duplicate":
        return _done(base, "duplicate", prev.invoice_id, prev.invoice_number, earlier=True)
    if prev is not None and prev.outcome in ("pending", "possibly"):
        # Its outcome was lost (a crash, a cancel, a timeout): look before sending anything again.
        since = parse_iso(prev.started_at) - timedelta(seconds=60)
        found = recent.get(draft_fingerprint(row.draft, today=today)) or await svc.writer.look_for(row.draft, since)
        if found is not None and found.id:
            await journal.outcome(prev.id, "created", invoice_id=found.id, invoice_number=found.invoice_number)
            return _done(base, "created", found.id, found.invoice_number, earlier=True)
        await journal.outcome(prev.id, "failed", detail="not on the API after an interruption: sent again")
    try:
        inv = await svc.writer.create(
            row.draft, who=who, tool="create_invoices", batch=(batch_id, row.n), recent=recent
        )
    except DuplicateInvoice as dup:
        entry = await journal.intent(
            who,
            "create_invoices",
            {"customer_id": row.draft.customer_id, "row": row.n},
            customer_id=row.draft.customer_id,
            batch_id=batch_id,
            batch_row=row.n,
            total=str(row.draft.total),
        )
        await journal.outcome(
            entry,
            "duplicate" if dup.state == "created" else "failed",
            invoice_id=dup.invoice_id,
            invoice_number=dup.invoice_number,
            detail=f"identical invoice {dup.state}",
        )
        if dup.state == "created":
            return _done(base, "duplicate", dup.invoice_id, dup.invoice_number)
        base.reason = "an identical invoice may have just been created; check list_invoices before retrying"
        base.may_exist = True
        return base
    except PossiblyCreated as exc:
        base.reason, base.may_exist = clean(str(exc), 200), True
        return base
    except (APIError, NotFound, ServiceError) as exc:
        base.reason = clean(getattr(exc, "message", None) or str(exc), 200)
        return base
    return _done(base, "created", inv.id, inv.invoice_number)


def _done(
    base: RowResult, status: RowStatus, invoice_id: str | None, number: str | None, *, earlier: bool = False
) -> RowResult:
    base.status, base.invoice_id, base.invoice_number, base.earlier = status, invoice_id, number, earlier
    return base


@dataclass(frozen=True)
class RowSpec:
    """A row as the caller wrote it: the customer by id or exact name."""

    customer: str
    draft: InvoiceToCreate
    """With ``customer_id`` still unresolved (set to ``customer``)."""


async def resolve_rows(svc: InvoiceService, specs: Sequence[RowSpec]) -> list[BatchRow]:
    """Every row's customer, by id or exact (case-insensitive) name, from the cached directory
    (one request per 100 customers). The first row that cannot be resolved fails the batch."""
    if not specs:
        raise BatchError("rows is empty; nothing was sent")
    if len(specs) > MAX_ROWS:
        raise BatchError(f"at most {MAX_ROWS} rows per batch (got {len(specs)}); nothing was sent")
    directory = await svc.customers.directory()
    by_id = {c.id: c for c in directory if c.id}
    by_name: dict[str, list[Any]] = {}
    for c in directory:
        by_name.setdefault((c.name or "").casefold().strip(), []).append(c)
    rows = []
    for n, spec in enumerate(specs):
        key = spec.customer.strip()
        customer = by_id.get(key)
        if customer is None:
            named = by_name.get(key.casefold(), [])
            if len(named) > 1:
                raise BatchError(
                    f"rows[{n}].customer: {len(named)} customers are named {clean(key, 80)!r}; give its id "
                    "(find_customers). Nothing was sent."
                )
            customer = named[0] if named else None
        if customer is None or not customer.id:
            raise BatchError(
                f"rows[{n}].customer: no customer {clean(key, 80)!r} (by id or exact name); look it up with "
                "find_customers. Nothing was sent."
            )
        draft = InvoiceToCreate(
            customer_id=customer.id,
            lines=spec.draft.lines,
            due_date=spec.draft.due_date,
            currency=spec.draft.currency,
            exclude_from_autopay=spec.draft.exclude_from_autopay,
        )
        rows.append(BatchRow(n, draft, clean(customer.name, 80) or customer.id))
    return rows


@dataclass(frozen=True)
class Flag:
    n: int
    why: str


async def possible_duplicates(svc: InvoiceService, rows: Sequence[BatchRow], batch_id: str) -> list[Flag]:
    """Rows that look like an invoice made in the last minutes (the API, one look for the whole
    batch, and the journal) or like an earlier row of the same batch. Rows this batch itself
    already created are not flagged."""
    writer = svc.writer
    today = writer.today()
    recent = await writer.recent_invoices()
    done = await svc.journal.batch(batch_id) if svc.journal is not None else {}
    seen: dict[str, int] = {}
    flags = []
    for row in rows:
        if row.n in done and done[row.n].outcome == "created":
            continue
        fp = draft_fingerprint(row.draft, today=today)
        if fp in seen:
            flags.append(Flag(row.n, f"same as rows[{seen[fp]}]"))
        elif fp in recent:
            flags.append(Flag(row.n, f"like {clean(recent[fp].invoice_number, 40) or recent[fp].id}"))
        elif (dup := await writer.recent_duplicate(row.draft)) is not None:
            flags.append(Flag(row.n, f"like {clean(dup.invoice_number, 40) or 'a create just made'}"))
        seen.setdefault(fp, row.n)
    return flags


# -- archive and restore batches ---------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveFilter:
    status: str | None = None
    created_before: str | None = None
    """YYYY-MM-DD: created before this day."""
    customer_id: str | None = None


async def archive_targets(svc: InvoiceService, refs: Sequence[str], where: ArchiveFilter | None) -> list[Invoice]:
    """Exactly the invoices a batch would archive (archived ones left out), at most 100."""
    from invoice_mcp.api.models import PAGE_SIZE, InvoiceStatus
    from invoice_mcp.service.paging import walk

    found: list[Invoice] = []
    if refs:
        for n, ref in enumerate(refs):
            try:
                found.append(await svc.resolve_invoice(ref))
            except NotFound:
                raise BatchError(f"invoices[{n}]: no invoice {clean(ref, 64)!r}; nothing was archived") from None
    elif where is not None:

        async def fetch(after: str | None) -> Any:
            return await svc.client.list_invoices(
                limit=PAGE_SIZE,
                after=after,
                status=where.status,
                customer_id=where.customer_id,
                created_at_end=f"{where.created_before}T00:00:00Z" if where.created_before else None,
            )

        async for page in walk(fetch, max_pages=3):
            found.extend(page.data)
            if len(found) > MAX_ROWS:
                break
    else:
        raise BatchError("give invoices=[…] or a filter (status, created_before, customer); nothing was archived")
    seen: set[str] = set()
    targets = []
    for inv in found:
        if inv.id and inv.id not in seen and inv.status != InvoiceStatus.ARCHIVED:
            seen.add(inv.id)
            targets.append(inv)
    if len(targets) > MAX_ROWS:
        raise BatchError(f"more than {MAX_ROWS} invoices match: narrow the filter; nothing was archived")
    return targets


async def run_change_batch(
    svc: InvoiceService,
    batch_id: str,
    targets: Sequence[Invoice],
    who: Attribution,
    *,
    action: Literal["archive", "restore"],
    names: dict[str, str],
    progress: Progress = _noop,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> BatchOutcome:
    """Archive (or restore) every target not already done by an earlier run of this batch."""
    journal = svc.journal
    if journal is None:
        raise BatchError("batches need the state store (the write journal); nothing was sent")
    digest = hashlib.sha256("|".join(sorted(t.id or "" for t in targets)).encode()).hexdigest()
    lease = Lease(svc, journal.scope, batch_id, clock=clock, sleep=sleep)
    await lease.acquire(action, digest, len(targets))
    done_status: RowStatus = "archived" if action == "archive" else "restored"
    tool = "archive_invoices" if action == "archive" else "restore_invoices"
    out = BatchOutcome(batch_id)
    try:
        done = await journal.batch(batch_id)
        for n, inv in enumerate(targets):
            name = names.get(inv.customer_id or "", "") or clean(inv.customer_id, 64)
            base = RowResult(n, "failed", name, inv.total or Decimal("0"), inv.id, inv.invoice_number)
            prev = done.get(n)
            if prev is not None and prev.outcome in ("archived", "restored", "unchanged"):
                base.status, base.earlier = done_status, True
            else:
                try:
                    change = svc.writer.archive if action == "archive" else svc.writer.restore
                    after = await change(inv.id or "", who=who, tool=tool, batch=(batch_id, n), previous=inv)
                    base.status = done_status
                    if action == "restore" and after.status == "archived":
                        base.status = "unchanged"
                except (APIError, NotFound, ServiceError) as exc:
                    base.reason = clean(getattr(exc, "message", None) or str(exc), 200)
            out.rows.append(base)
            await lease.renew()
            await progress(n + 1, len(targets), f"{inv.invoice_number or inv.id}: {base.status}")
    finally:
        await lease.release()
        svc.chunks.forget()
        svc.payments.forget()
    return out


async def archived_by(svc: InvoiceService, batch_id: str) -> list[Invoice]:
    """The invoices an archive batch archived, current state from the API, in batch order."""
    journal = svc.journal
    if journal is None:
        raise BatchError("restoring a batch needs the state store (the write journal)")
    entries = await journal.batch(batch_id)
    ids = [
        e.invoice_id
        for _, e in sorted(entries.items())
        if e.tool == "archive_invoices" and e.outcome == "archived" and e.invoice_id
    ]
    if not ids:
        raise BatchError(f"no archive batch {clean(batch_id, 64)!r} with archived invoices in the journal")
    invoices = []
    for invoice_id in ids:
        try:
            invoices.append(await svc.resolve_invoice(invoice_id))
        except NotFound:
            continue
    return invoices
